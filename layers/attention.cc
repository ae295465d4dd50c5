#include "layers/attention.h"

#include "absl/strings/str_cat.h"

namespace sinklab {

Attention::Attention(Backend* backend, Arena* arena, const std::string& prefix,
                     const ModelDims& dims, const AttentionConfig& config, int64_t batch,
                     int64_t seq_len, const Rope* rope)
    : backend_(backend),
      rope_(rope),
      spec_(AttentionSpecOf(config, dims.head_dim)),
      wq_(backend, arena, prefix + ".wq", dims.d_model, dims.n_heads * dims.head_dim),
      wk_(backend, arena, prefix + ".wk", dims.d_model, dims.n_kv_heads * dims.head_dim),
      wv_(backend, arena, prefix + ".wv", dims.d_model, dims.n_kv_heads * dims.head_dim),
      wo_(backend, arena, prefix + ".wo", dims.n_heads * dims.head_dim, dims.d_model) {
  const DType act = backend->activation_dtype();
  const int64_t H = dims.n_heads, Hkv = dims.n_kv_heads, dh = dims.head_dim;
  for (Tensor* t : {&q_, &att_, &d_att_, &dq_, &dq_pre_}) {
    *t = arena->Allocate(act, {batch, seq_len, H, dh});
  }
  for (Tensor* t : {&k_, &v_, &dk_, &dv_, &dk_pre_}) {
    *t = arena->Allocate(act, {batch, seq_len, Hkv, dh});
  }
  probs_ = arena->Allocate(DType::kF32, {batch, H, seq_len, seq_len});
  lse_ = arena->Allocate(DType::kF32, {batch, H, seq_len});
}

std::vector<Parameter*> Attention::parameters() {
  return {wq_.weight(), wk_.weight(), wv_.weight(), wo_.weight()};
}

void Attention::Forward(const Tensor& out, const Tensor& inp) {
  const int64_t n = inp.numel() / inp.dim(-1);
  SL_CHECK_MSG(n == q_.dim(0) * q_.dim(1),
               absl::StrCat("Attention input ", inp.ShapeString(), " vs q ", q_.ShapeString()));
  wq_.Forward(q_, inp);
  wk_.Forward(k_, inp);
  wv_.Forward(v_, inp);
  rope_->Forward(q_, q_);
  rope_->Forward(k_, k_);
  backend_->AttentionForward(att_, probs_, lse_, q_, k_, v_, spec_);
  wo_.Forward(out, att_);
}

void Attention::Backward(const Tensor& dinp, const Tensor& dout, const Tensor& inp) {
  backend_->Fill(d_att_, 0.0f);
  wo_.Backward(d_att_, dout, att_);
  for (const Tensor* t : {&dq_, &dk_, &dv_, &dq_pre_, &dk_pre_}) backend_->Fill(*t, 0.0f);
  backend_->AttentionBackward(dq_, dk_, dv_, d_att_, q_, k_, v_, probs_, lse_, spec_);
  rope_->Backward(dq_pre_, dq_);
  rope_->Backward(dk_pre_, dk_);
  wq_.Backward(dinp, dq_pre_, inp);
  wk_.Backward(dinp, dk_pre_, inp);
  wv_.Backward(dinp, dv_, inp);
}

}  // namespace sinklab

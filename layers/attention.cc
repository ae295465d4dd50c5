#include "layers/attention.h"

#include "absl/strings/str_cat.h"
#include "layers/make_parameter.h"

namespace sinklab {
namespace {

// Projection i of the q, k, v group, or a layer of its own when there is no group (GQA).
Linear Projection(Backend* backend, Arena* arena, const ParameterGroup& group, int i,
                  std::string name, int64_t in_features, int64_t out_features) {
  return group.params.empty() ? Linear(backend, arena, std::move(name), in_features, out_features)
                              : Linear(backend, group.params[i]);
}

}  // namespace

Attention::Attention(Backend* backend, Arena* arena, const std::string& prefix,
                     const ModelConfig& config, int64_t batch, int64_t seq_len, const Rope* rope)
    : backend_(backend),
      rope_(rope),
      dims_(DimsOf(config)),
      gate_position_(config.attention().gate().position()),
      batch_(batch),
      seq_len_(seq_len),
      bias_keys_(config.attention().kv_bias() ? 1 : 0),
      prefix_tokens_(config.prefix_tokens()),
      qkv_(dims_.n_kv_heads == dims_.n_heads
               ? MakeParameterGroup(
                     arena, *backend, {prefix + ".wq", prefix + ".wk", prefix + ".wv"},
                     ParamKind::kMatrix, dims_.n_heads * dims_.head_dim, dims_.d_model)
               : ParameterGroup()),
      wq_(Projection(backend, arena, qkv_, 0, prefix + ".wq", dims_.d_model,
                     dims_.n_heads * dims_.head_dim)),
      wk_(Projection(backend, arena, qkv_, 1, prefix + ".wk", dims_.d_model,
                     dims_.n_kv_heads * dims_.head_dim)),
      wv_(Projection(backend, arena, qkv_, 2, prefix + ".wv", dims_.d_model,
                     dims_.n_kv_heads * dims_.head_dim)),
      wo_(backend, arena, prefix + ".wo", dims_.n_heads * dims_.head_dim, dims_.d_model) {
  const AttentionConfig& attention = config.attention();
  const int64_t B = batch, S = seq_len, K = seq_len + bias_keys_;
  const int64_t H = dims_.n_heads, Hkv = dims_.n_kv_heads, dh = dims_.head_dim;
  // The sigmoid's default bias -ln(n) counts the keys of the full sequence (K).
  spec_ = AttentionSpecOf(attention, dh, K);
  const bool qk_norm = attention.qk_norm(), kv_bias = bias_keys_ > 0;
  const bool output_gate = gate_position_ == GateConfig::SDPA_OUTPUT;
  const bool value_gate = gate_position_ == GateConfig::VALUE;

  // Variant parameters, in checkpoint order.
  if (qk_norm) {
    q_norm_ = std::make_unique<RmsNorm>(backend, arena, prefix + ".q_norm", dh, B * S * H,
                                        config.norm_eps());
    k_norm_ = std::make_unique<RmsNorm>(backend, arena, prefix + ".k_norm", dh, B * S * Hkv,
                                        config.norm_eps());
  }
  if (spec_.normalizer == AttentionNormalizer::kSinkLogit) {
    sink_logit_ = MakeParameter(arena, *backend, prefix + ".sink_logit", ParamKind::kBias, {H});
  }
  if (kv_bias) {
    kv_bias_k_ = MakeParameter(arena, *backend, prefix + ".kv_bias_k", ParamKind::kBias, {Hkv, dh});
    kv_bias_v_ = MakeParameter(arena, *backend, prefix + ".kv_bias_v", ParamKind::kBias, {Hkv, dh});
  }
  if (gate_position_ != GateConfig::NONE) {
    const int64_t heads = output_gate ? H : Hkv;
    const int64_t gates =
        attention.gate().granularity() == GateConfig::HEADWISE ? heads : heads * dh;
    gate_ = std::make_unique<AttentionGate>(backend, arena, prefix + ".w_gate", dims_.d_model,
                                            gates, B * S);
  }

  // Activations: a stage a variant does not need aliases the one before it.
  const DType act = backend->activation_dtype();
  auto alloc = [&](int64_t rows, int64_t heads) {
    return arena->Allocate(act, {B, rows, heads, dh});
  };
  const bool grouped = !qkv_.params.empty();
  if (grouped) {
    qkv_proj_ = arena->Allocate(act, {3, B, S, H, dh});
    dqkv_proj_ = arena->Allocate(act, {3, B, S, H, dh});
  }
  q_proj_ = grouped ? qkv_proj_.Index0(0) : alloc(S, H);
  q_ = qk_norm ? alloc(S, H) : q_proj_;
  k_proj_ = grouped ? qkv_proj_.Index0(1) : alloc(S, Hkv);
  k_ = qk_norm ? alloc(S, Hkv) : k_proj_;
  v_ = grouped ? qkv_proj_.Index0(2) : alloc(S, Hkv);
  v_gated_ = value_gate ? alloc(S, Hkv) : v_;
  k_all_ = kv_bias ? alloc(K, Hkv) : k_;
  v_all_ = kv_bias ? alloc(K, Hkv) : v_gated_;
  att_ = alloc(S, H);
  wo_in_ = output_gate ? alloc(S, H) : att_;
  // probs only where the backward reads them (the CPU reference): a GPU backend recomputes
  // the weights from lse, and statistics need only row_stats_.
  if (backend->attention_backward_reads_probs()) {
    probs_ = arena->Allocate(DType::kF32, {B, H, S, K});
  }
  lse_ = arena->Allocate(DType::kF32, {B, H, S});
  if (spec_.normalizer == AttentionNormalizer::kClippedSoftmax) {
    unclipped_values_ = arena->Allocate(DType::kF32, {B, S, H, dh});
  }
  row_stats_ = arena->Allocate(DType::kF32, {B, H, S, int64_t{kAttentionRowStatFields}});
  // Gradients, aliased the same way.
  dq_ = alloc(S, H);
  // RoPE backward must not run in place: dq_pre_ is not dq_ (nor dk_pre_ dk_).
  dq_proj_ = grouped ? dqkv_proj_.Index0(0) : alloc(S, H);
  dq_pre_ = qk_norm ? alloc(S, H) : dq_proj_;
  dk_all_ = alloc(K, Hkv);
  dk_ = kv_bias ? alloc(S, Hkv) : dk_all_;
  dk_proj_ = grouped ? dqkv_proj_.Index0(1) : alloc(S, Hkv);
  dk_pre_ = qk_norm ? alloc(S, Hkv) : dk_proj_;
  dv_ = grouped ? dqkv_proj_.Index0(2) : alloc(S, Hkv);
  dv_gated_ = value_gate ? alloc(S, Hkv) : dv_;
  dv_all_ = kv_bias ? alloc(K, Hkv) : dv_gated_;
  d_wo_in_ = alloc(S, H);
  d_att_ = output_gate ? alloc(S, H) : d_wo_in_;
  // Zeroed before each backward: the gradients some kernel accumulates into (dk_, dv_gated_:
  // PrependRowsBackward), where they are buffers of their own. Not: dq_, dk_all_, dv_all_
  // (AttentionBackward overwrites them, kAssign), d_wo_in_ (wo's backward overwrites it),
  // a gate's dy (dv_ under G2, d_att_ under G1: the gate's backward overwrites it) and
  // dq_pre_, dk_pre_, dq_proj_, dk_proj_ (RoPE's and QK-norm's backward overwrite them).
  for (const Tensor* t : {&dk_, &dv_gated_}) {
    bool seen = false;
    for (const Tensor* assigned : {&dq_, &dk_all_, &dv_all_, &d_wo_in_}) {
      seen |= t->data() == assigned->data();
    }
    for (const Tensor& z : zeroed_grads_) seen |= z.data() == t->data();
    if (!seen) zeroed_grads_.push_back(*t);
  }
}

Attention::~Attention() = default;

std::vector<Parameter*> Attention::parameters() {
  std::vector<Parameter*> params = {wq_.weight(), wk_.weight(), wv_.weight(), wo_.weight()};
  if (q_norm_) {
    params.push_back(q_norm_->weight());
    params.push_back(k_norm_->weight());
  }
  if (sink_logit() != nullptr) params.push_back(&sink_logit_);
  if (bias_keys_ > 0) {
    params.push_back(&kv_bias_k_);
    params.push_back(&kv_bias_v_);
  }
  if (gate_) params.push_back(gate_->weight());
  return params;
}

Tensor Attention::gate_values() const {
  if (!gate_) return Tensor();
  const Tensor& gate = gate_->gate();
  return gate.Reshaped({batch_, seq_len_, gate.dim(1)});
}

void Attention::Forward(const Tensor& out, const Tensor& inp, const Tensor& residual) {
  const int64_t n = inp.numel() / inp.dim(-1);
  SL_CHECK_MSG(n == batch_ * seq_len_,
               absl::StrCat("Attention input ", inp.ShapeString(), " vs q ", q_.ShapeString()));
  if (!qkv_.params.empty()) {
    backend_->MatmulForwardGroup(qkv_proj_, inp, qkv_.compute);
  } else {
    wq_.Forward(q_proj_, inp);
    wk_.Forward(k_proj_, inp);
    wv_.Forward(v_, inp);
  }
  if (q_norm_) {  // QK-norm (Dehghani et al. 2023): RMSNorm over d_h per head, before RoPE
    q_norm_->ForwardRope(q_, q_proj_, *rope_);
    k_norm_->ForwardRope(k_, k_proj_, *rope_);
  } else {
    rope_->Forward(q_, q_);
    rope_->Forward(k_, k_);
  }
  if (gate_position_ == GateConfig::VALUE) gate_->Forward(v_gated_, v_, inp);  // G2
  // KV bias (Sun et al. 2024): key/value 0, no RoPE. Apart where the backend has that path
  // (not in statistics steps, whose weights cover the [B, K] keys), else prepended.
  bias_apart_ = bias_keys_ > 0 && !capture_statistics_ &&
                backend_->AttentionForwardBiasApart(att_, lse_, q_, k_, v_gated_,
                                                    kv_bias_k_.compute, kv_bias_v_.compute,
                                                    sink_logit_.compute, spec_);
  if (!bias_apart_) {
    if (bias_keys_ > 0) {
      backend_->PrependRows(k_all_, kv_bias_k_.compute, k_);
      backend_->PrependRows(v_all_, kv_bias_v_.compute, v_gated_);
    }
    backend_->AttentionForward(att_, probs_, lse_, unclipped_values_, q_, k_all_, v_all_,
                               sink_logit_.compute, spec_);
  }
  if (capture_statistics_) {
    backend_->AttentionRowStats(row_stats_, probs_, q_, k_all_, lse_, sink_logit_.compute, spec_,
                                prefix_tokens_);
  }
  if (gate_position_ == GateConfig::SDPA_OUTPUT) gate_->Forward(wo_in_, att_, inp);  // G1
  wo_.Forward(out, wo_in_, residual);
}

void Attention::Backward(const Tensor& dinp, const Tensor& dout, const Tensor& inp) {
  for (const Tensor& t : zeroed_grads_) {
    // The bias key apart overwrites dk_ and dv_gated_ (PrependRowsBackward would add).
    const bool overwritten = t.data() == dk_.data() || t.data() == dv_gated_.data();
    if (!(bias_apart_ && overwritten)) backend_->Fill(t, 0.0f);
  }
  // dinp's first writer (the G1 or G2 gate's projection, else wq) overwrites it.
  GradWrite dinp_write = GradWrite::kAssign;
  const auto next_dinp_write = [&dinp_write] {
    return std::exchange(dinp_write, GradWrite::kAccumulate);
  };
  wo_.Backward(d_wo_in_, dout, wo_in_, GradWrite::kAssign);
  if (gate_position_ == GateConfig::SDPA_OUTPUT) {
    gate_->Backward(d_att_, dinp, d_wo_in_, att_, inp, next_dinp_write());
  }
  if (bias_apart_) {
    backend_->AttentionBackwardBiasApart(dq_, dk_, dv_gated_, kv_bias_k_.grad, kv_bias_v_.grad,
                                         sink_logit_.grad, d_att_, q_, k_, v_gated_,
                                         kv_bias_k_.compute, kv_bias_v_.compute,
                                         sink_logit_.compute, att_, lse_, spec_);
  } else {
    backend_->AttentionBackward(dq_, dk_all_, dv_all_, sink_logit_.grad, d_att_, q_, k_all_,
                                v_all_, sink_logit_.compute, att_, unclipped_values_, probs_, lse_,
                                spec_, GradWrite::kAssign);
    if (bias_keys_ > 0) {
      backend_->PrependRowsBackward(kv_bias_k_.grad, dk_, dk_all_);
      backend_->PrependRowsBackward(kv_bias_v_.grad, dv_gated_, dv_all_);
    }
  }
  if (gate_position_ == GateConfig::VALUE) {
    gate_->Backward(dv_, dinp, dv_gated_, v_, inp, next_dinp_write());
  }
  if (q_norm_) {
    q_norm_->BackwardRope(dq_proj_, dq_, q_proj_, *rope_, dq_pre_);
    k_norm_->BackwardRope(dk_proj_, dk_, k_proj_, *rope_, dk_pre_);
  } else {
    rope_->Backward(dq_pre_, dq_, GradWrite::kAssign);
    rope_->Backward(dk_pre_, dk_, GradWrite::kAssign);
  }
  if (!qkv_.params.empty()) {  // weight gradients as one grouped matmul
    GroupBackward(backend_, qkv_, dinp, dqkv_proj_, inp, next_dinp_write());
  } else {
    wq_.Backward(dinp, dq_proj_, inp, next_dinp_write());
    wk_.Backward(dinp, dk_proj_, inp, GradWrite::kAccumulate);
    wv_.Backward(dinp, dv_, inp, GradWrite::kAccumulate);
  }
}

}  // namespace sinklab

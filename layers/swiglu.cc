#include "layers/swiglu.h"

#include "absl/strings/str_cat.h"

namespace sinklab {

SwiGlu::SwiGlu(Backend* backend, Arena* arena, const std::string& prefix, int64_t d_model,
               int64_t ffn_hidden, int64_t max_rows)
    : backend_(backend),
      w_gate_(backend, arena, prefix + ".w_gate", d_model, ffn_hidden),
      w_up_(backend, arena, prefix + ".w_up", d_model, ffn_hidden),
      w_down_(backend, arena, prefix + ".w_down", ffn_hidden, d_model) {
  for (Tensor* t : {&gate_, &up_, &act_, &d_gate_, &d_up_, &d_act_}) {
    *t = arena->Allocate(backend->activation_dtype(), {max_rows, ffn_hidden});
  }
}

std::vector<Parameter*> SwiGlu::parameters() {
  return {w_gate_.weight(), w_up_.weight(), w_down_.weight()};
}

void SwiGlu::Forward(const Tensor& out, const Tensor& inp, const Tensor& residual) {
  const int64_t n = inp.numel() / inp.dim(-1);
  SL_CHECK_MSG(n <= gate_.dim(0), absl::StrCat("SwiGlu: ", n, " rows > ", gate_.dim(0)));
  const Tensor gate = gate_.Slice0(0, n), up = up_.Slice0(0, n), act = act_.Slice0(0, n);
  w_gate_.Forward(gate, inp);
  w_up_.Forward(up, inp);
  backend_->SwigluForward(act, gate, up);
  w_down_.Forward(out, act, residual);
}

void SwiGlu::Backward(const Tensor& dinp, const Tensor& dout, const Tensor& inp) {
  const int64_t n = inp.numel() / inp.dim(-1);
  const Tensor gate = gate_.Slice0(0, n), up = up_.Slice0(0, n), act = act_.Slice0(0, n);
  const Tensor d_gate = d_gate_.Slice0(0, n), d_up = d_up_.Slice0(0, n),
               d_act = d_act_.Slice0(0, n);
  w_down_.Backward(d_act, dout, act, GradWrite::kAssign);
  backend_->SwigluBackward(d_gate, d_up, d_act, gate, up);
  w_gate_.Backward(dinp, d_gate, inp, GradWrite::kAssign);
  w_up_.Backward(dinp, d_up, inp, GradWrite::kAccumulate);
}

}  // namespace sinklab

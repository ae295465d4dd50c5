#include "layers/swiglu.h"

#include "absl/strings/str_cat.h"

namespace sinklab {

SwiGlu::SwiGlu(Backend* backend, Arena* arena, const std::string& prefix, int64_t d_model,
               int64_t ffn_hidden, int64_t max_rows)
    : backend_(backend),
      gate_up_(MakeParameterGroup(arena, *backend, {prefix + ".w_gate", prefix + ".w_up"},
                                  ParamKind::kMatrix, ffn_hidden, d_model)),
      w_gate_(backend, gate_up_.params[0]),
      w_up_(backend, gate_up_.params[1]),
      w_down_(backend, arena, prefix + ".w_down", ffn_hidden, d_model) {
  const DType act = backend->activation_dtype();
  gate_up_out_ = arena->Allocate(act, {2, max_rows, ffn_hidden});
  d_gate_up_ = arena->Allocate(act, {2, max_rows, ffn_hidden});
  gate_ = gate_up_out_.Index0(0);
  up_ = gate_up_out_.Index0(1);
  d_gate_ = d_gate_up_.Index0(0);
  d_up_ = d_gate_up_.Index0(1);
  act_ = arena->Allocate(act, {max_rows, ffn_hidden});
  d_act_ = arena->Allocate(act, {max_rows, ffn_hidden});
}

std::vector<Parameter*> SwiGlu::parameters() {
  return {w_gate_.weight(), w_up_.weight(), w_down_.weight()};
}

void SwiGlu::Forward(const Tensor& out, const Tensor& inp, const Tensor& residual) {
  const int64_t n = inp.numel() / inp.dim(-1);
  SL_CHECK_MSG(n <= gate_.dim(0), absl::StrCat("SwiGlu: ", n, " rows > ", gate_.dim(0)));
  const Tensor gate = gate_.Slice0(0, n), up = up_.Slice0(0, n), act = act_.Slice0(0, n);
  if (n == gate_.dim(0)) {  // gate and up adjacent: one grouped matmul
    backend_->MatmulForwardGroup(gate_up_out_, inp, gate_up_.compute);
  } else {
    w_gate_.Forward(gate, inp);
    w_up_.Forward(up, inp);
  }
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
  if (n == gate_.dim(0)) {  // the two weight gradients as one grouped matmul
    GroupBackward(backend_, gate_up_, dinp, d_gate_up_, inp, GradWrite::kAssign);
  } else {
    w_gate_.Backward(dinp, d_gate, inp, GradWrite::kAssign);
    w_up_.Backward(dinp, d_up, inp, GradWrite::kAccumulate);
  }
}

}  // namespace sinklab

#include "layers/attention_gate.h"

#include <utility>

namespace sinklab {

AttentionGate::AttentionGate(Backend* backend, Arena* arena, std::string name, int64_t d_model,
                             int64_t gates, int64_t max_rows)
    : backend_(backend),
      w_gate_(backend, arena, std::move(name), d_model, gates),
      gate_(arena->Allocate(backend->activation_dtype(), {max_rows, gates})),
      d_logits_(arena->Allocate(backend->activation_dtype(), {max_rows, gates})) {}

void AttentionGate::Forward(const Tensor& out, const Tensor& y, const Tensor& x) {
  const int64_t rows = x.numel() / x.dim(-1);
  const Tensor gate = gate_.Slice0(0, rows);
  w_gate_.Forward(gate, x);
  backend_->SigmoidGateForward(out, gate, y, gate);
}

void AttentionGate::Backward(const Tensor& dy, const Tensor& dx, const Tensor& dout,
                             const Tensor& y, const Tensor& x, GradWrite dx_write) {
  const int64_t rows = x.numel() / x.dim(-1);
  const Tensor d_logits = d_logits_.Slice0(0, rows);
  backend_->SigmoidGateBackward(dy, d_logits, dout, y, gate_.Slice0(0, rows), GradWrite::kAssign);
  w_gate_.Backward(dx, d_logits, x, dx_write);
}

}  // namespace sinklab

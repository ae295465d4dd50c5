// AttentionGate: the sigmoid gate of gated attention (Qiu et al. 2025, "Gated Attention for
// Large Language Models"): Y' = Y * sigmoid(X W_g^T), X the block's normed input [N, D].
// W_g [G, D] ("<prefix>.w_gate", kind kMatrix); Y [N, C] with C / G channels per gate:
// G = C elementwise, G = heads (C / G = d_h) headwise. Position G1 gates the attention
// output (C = H d_h), G2 the values (C = Hkv d_h); layers/attention.cc decides.
#ifndef SINKLAB_LAYERS_ATTENTION_GATE_H_
#define SINKLAB_LAYERS_ATTENTION_GATE_H_

#include <string>

#include "core/arena.h"
#include "layers/backend.h"
#include "layers/linear.h"

namespace sinklab {

class AttentionGate {
 public:
  // W_g [gates, d_model]; buffers for max_rows rows.
  AttentionGate(Backend* backend, Arena* arena, std::string name, int64_t d_model,
                int64_t gates, int64_t max_rows);

  // out [N, C] = y [N, C] * sigmoid(x [N, D] W_g^T) (out distinct from y). Caches the gate
  // values g = sigmoid(x W_g^T) [N, G] (Backward and statistics read them).
  void Forward(const Tensor& out, const Tensor& y, const Tensor& x);
  // dy [N, C] = dout * g (overwritten);  dx [N, D] = or += dz W_g (dx_write);
  // W_g.grad += dz^T x,
  // with dz = g (1 - g) sum_{channels of the gate} dout * y. dy or dx may be empty (skipped).
  void Backward(const Tensor& dy, const Tensor& dx, const Tensor& dout, const Tensor& y,
                const Tensor& x, GradWrite dx_write);

  Parameter* weight() { return w_gate_.weight(); }
  // The last Forward's gate values [max_rows, G].
  const Tensor& gate() const { return gate_; }

 private:
  Backend* backend_;
  Linear w_gate_;
  Tensor gate_;      // [max_rows, G]: logits x W_g^T, then sigmoid in place
  Tensor d_logits_;  // [max_rows, G]
};

}  // namespace sinklab

#endif  // SINKLAB_LAYERS_ATTENTION_GATE_H_

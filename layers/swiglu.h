// SwiGlu: the feed-forward block FFN(x) = W_down (silu(W_gate x) * (W_up x))
// (Shazeer 2020, "GLU Variants Improve Transformer"). w_gate, w_up [F, D]; w_down [D, F].
// w_gate and w_up are one ParameterGroup and gate, up adjacent [2, rows, F] buffers, so a
// full batch runs both projections as one grouped matmul (one batched GEMM on GPUs), and
// both weight gradients as another.
#ifndef SINKLAB_LAYERS_SWIGLU_H_
#define SINKLAB_LAYERS_SWIGLU_H_

#include <string>
#include <vector>

#include "core/arena.h"
#include "layers/backend.h"
#include "layers/linear.h"
#include "layers/make_parameter.h"

namespace sinklab {

class SwiGlu {
 public:
  // Parameters "<prefix>.w_gate", ".w_up", ".w_down"; buffers for max_rows rows.
  SwiGlu(Backend* backend, Arena* arena, const std::string& prefix, int64_t d_model,
         int64_t ffn_hidden, int64_t max_rows);

  // out [N, D] = residual + FFN(inp [N, D]) (residual [N, D] or empty: FFN alone; it may
  // alias out). Caches gate, up, act = silu(gate) * up, all [N, F].
  void Forward(const Tensor& out, const Tensor& inp, const Tensor& residual);
  // dinp [N, D] = ... (overwritten); weight grads += ...; inp is the Forward input.
  void Backward(const Tensor& dinp, const Tensor& dout, const Tensor& inp);

  // w_gate, w_up, w_down (checkpoint order).
  std::vector<Parameter*> parameters();
  Parameter* output_projection() { return w_down_.weight(); }
  // The last Forward's silu(gate) * up [max_rows, F]: the input of w_down.
  const Tensor& hidden() const { return act_; }

 private:
  Backend* backend_;
  ParameterGroup gate_up_;  // w_gate, w_up
  Linear w_gate_, w_up_, w_down_;
  Tensor gate_up_out_, d_gate_up_;  // [2, max_rows, F]: gate and up; their gradients
  Tensor gate_, up_, act_;          // [max_rows, F] forward caches (gate_, up_ in gate_up_out_)
  Tensor d_gate_, d_up_, d_act_;    // [max_rows, F] backward scratch (d_gate_, d_up_ likewise)
};

}  // namespace sinklab

#endif  // SINKLAB_LAYERS_SWIGLU_H_

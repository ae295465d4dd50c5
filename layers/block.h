// Block: one pre-norm decoder layer (Llama):
//   h = x + Attention(RMSNorm_attn(x));   out = h + SwiGLU(RMSNorm_ffn(h)).
#ifndef SINKLAB_LAYERS_BLOCK_H_
#define SINKLAB_LAYERS_BLOCK_H_

#include <vector>

#include "configs/sinklab.pb.h"
#include "core/arena.h"
#include "layers/attention.h"
#include "layers/backend.h"
#include "layers/rmsnorm.h"
#include "layers/rope.h"
#include "layers/swiglu.h"

namespace sinklab {

class Block {
 public:
  // Parameters "layers.<index>.attn_norm", ".attn.*", ".ffn_norm", ".ffn.*". seq_len is the
  // number of positions S of the residual stream (prefix tokens included).
  Block(Backend* backend, Arena* arena, int index, const ModelConfig& config, int64_t batch,
        int64_t seq_len, const Rope* rope);

  // out [B, S, D] = Block(inp [B, S, D]) (caller-owned, distinct). Caches both normed
  // inputs and the mid residual h (plus what its layers cache).
  void Forward(const Tensor& out, const Tensor& inp);
  // dinp [B, S, D] = dL/d inp from dout = dL/d out (overwritten; dinp may be dout itself:
  // the block then runs in place, with no copy); parameter grads += ...; inp is the
  // Forward input.
  void Backward(const Tensor& dinp, const Tensor& dout, const Tensor& inp);

  // attn_norm, attn.wq, attn.wk, attn.wv, attn.wo (+ the attention variants' parameters,
  // Attention::parameters), ffn_norm, ffn.w_gate, ffn.w_up, ffn.w_down (checkpoint order).
  std::vector<Parameter*> parameters();
  // attn.wo and ffn.w_down: the projections into the residual stream (init scaled down).
  std::vector<Parameter*> output_projections();
  Attention& attention() { return attn_; }
  // The residual stream after the attention half, h [B, S, D].
  const Tensor& mid() const { return mid_; }
  // The normed inputs of the attention and FFN halves [B, S, D] of the last Forward.
  const Tensor& attention_input() const { return attn_in_; }
  const Tensor& ffn_input() const { return ffn_in_; }
  const SwiGlu& ffn() const { return ffn_; }

 private:
  Backend* backend_;
  RmsNorm attn_norm_;
  Attention attn_;
  RmsNorm ffn_norm_;
  SwiGlu ffn_;
  Tensor attn_in_, ffn_in_;  // normed inputs of the two halves [B, S, D]
  Tensor mid_;               // h = x + attention [B, S, D]
  Tensor d_attn_in_, d_ffn_in_;
};

}  // namespace sinklab

#endif  // SINKLAB_LAYERS_BLOCK_H_

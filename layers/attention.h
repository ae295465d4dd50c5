// Attention: causal multi-head self-attention with grouped-query attention and RoPE on q, k.
//   q = RoPE(x Wq^T), k = RoPE(x Wk^T), v = x Wv^T,  y = Attn(q, k, v) Wo^T
// Weights: wq [H*d_h, D], wk and wv [Hkv*d_h, D], wo [D, H*d_h] (H*d_h = D).
// Activations are [B, T, H, d_h] = [N, H*d_h] (layers/backend.h); the kernel options come
// from AttentionSpecOf (normalizer, scale 1/sqrt(d_h)).
#ifndef SINKLAB_LAYERS_ATTENTION_H_
#define SINKLAB_LAYERS_ATTENTION_H_

#include <string>
#include <vector>

#include "configs/sinklab.pb.h"
#include "core/arena.h"
#include "layers/backend.h"
#include "layers/linear.h"
#include "layers/model_dims.h"
#include "layers/rope.h"

namespace sinklab {

class Attention {
 public:
  // Parameters "<prefix>.wq", ".wk", ".wv", ".wo"; buffers for a [batch, seq_len] input.
  // `config` is the attention sub-message (its normalizer; the variants to come).
  Attention(Backend* backend, Arena* arena, const std::string& prefix, const ModelDims& dims,
            const AttentionConfig& config, int64_t batch, int64_t seq_len, const Rope* rope);

  // out [B, T, D] = attention of inp [B, T, D] (both owned by the caller). Caches q, k
  // (rotated), v, the pre-projection output, probs [B, H, T, T] and lse [B, H, T].
  void Forward(const Tensor& out, const Tensor& inp);
  // dinp [B, T, D] += ...; weight grads += ...; inp is the Forward input.
  void Backward(const Tensor& dinp, const Tensor& dout, const Tensor& inp);

  // wq, wk, wv, wo (checkpoint order).
  std::vector<Parameter*> parameters();
  Parameter* output_projection() { return wo_.weight(); }
  // The last Forward's weights [B, H, T, T] and row log-sum-exps [B, H, T] (statistics).
  const Tensor& probs() const { return probs_; }
  const Tensor& lse() const { return lse_; }
  // The last Forward's values [B, T, Hkv, d_h] and the input of wo [B, T, H * d_h].
  const Tensor& v() const { return v_; }
  const Tensor& attention_output() const { return att_; }

 private:
  Backend* backend_;
  const Rope* rope_;
  AttentionSpec spec_;
  Linear wq_, wk_, wv_, wo_;
  // Forward caches. q_, k_ hold the projections, rotated in place.
  Tensor q_, k_, v_;      // [B, T, H, d_h], [B, T, Hkv, d_h] x2
  Tensor att_;            // [B, T, H, d_h]: sum_j p_ij v_j, the input of wo
  Tensor probs_, lse_;    // [B, H, T, T], [B, H, T] f32
  // Backward scratch.
  Tensor d_att_, dq_, dk_, dv_;  // gradients of att_, q_, k_, v_
  Tensor dq_pre_, dk_pre_;       // gradients of the projections before RoPE
};

}  // namespace sinklab

#endif  // SINKLAB_LAYERS_ATTENTION_H_

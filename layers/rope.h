// Rope: rotary position embedding (Su et al. 2021), rotate-half convention of Hugging Face
// Llama. Holds the cos/sin tables [seq_len, head_dim/2], built once; shared by all layers.
#ifndef SINKLAB_LAYERS_ROPE_H_
#define SINKLAB_LAYERS_ROPE_H_

#include "core/arena.h"
#include "layers/backend.h"

namespace sinklab {

class Rope {
 public:
  // Tables for positions t < seq_len: angle(t, i) = t * theta_i, theta_i = base^(-2i/d),
  // computed in fp32 as Hugging Face does (inv_freq = 1 / base^(2i/d), freqs = t * inv_freq)
  // so that exported models agree to rounding.
  Rope(Backend* backend, Arena* arena, int64_t seq_len, int64_t head_dim, float base);

  // out [B, T, H, d] = rotation of inp at positions t (out may alias inp). Caches nothing.
  void Forward(const Tensor& out, const Tensor& inp) const;
  // dinp [B, T, H, d] = or += (dinp_write) inverse rotation of dout (dinp must not alias
  // dout).
  void Backward(const Tensor& dinp, const Tensor& dout, GradWrite dinp_write) const;

  const Tensor& cos() const { return cos_; }
  const Tensor& sin() const { return sin_; }

 private:
  Backend* backend_;
  Tensor cos_, sin_;  // [seq_len, head_dim / 2] f32
};

}  // namespace sinklab

#endif  // SINKLAB_LAYERS_ROPE_H_

// RmsNorm (Zhang & Sennrich 2019): y = x / sqrt(mean(x^2) + eps) * w, gain w [D] init 1.
#ifndef SINKLAB_LAYERS_RMSNORM_H_
#define SINKLAB_LAYERS_RMSNORM_H_

#include <string>

#include "core/arena.h"
#include "layers/backend.h"
#include "layers/parameter.h"
#include "layers/rope.h"

namespace sinklab {

class RmsNorm {
 public:
  // Gain `name` [d_model] (kind kNorm) and the rstd cache for up to max_rows rows.
  RmsNorm(Backend* backend, Arena* arena, std::string name, int64_t d_model, int64_t max_rows,
          float eps);

  // out [N, D] = RMSNorm(inp [N, D]); caches rstd [N] f32 for Backward.
  void Forward(const Tensor& out, const Tensor& inp);
  // dinp [N, D] = or += ... (dinp_write), w.grad += ...; inp is the Forward input.
  void Backward(const Tensor& dinp, const Tensor& dout, const Tensor& inp, GradWrite dinp_write);
  // QK-norm then RoPE: out [B, T, H, d] = rope(RMSNorm over d of inp) (d = this gain's
  // width; Backend::RmsNormRopeForward, one pass where the backend fuses them).
  void ForwardRope(const Tensor& out, const Tensor& inp, const Rope& rope);
  // dinp [B, T, H, d] overwritten, w.grad +=; scratch [B, T, H, d] as the backend's.
  void BackwardRope(const Tensor& dinp, const Tensor& dout, const Tensor& inp, const Rope& rope,
                    const Tensor& scratch);

  Parameter* weight() { return &weight_; }
  const Tensor& rstd() const { return rstd_; }

 private:
  Tensor RowsOf(const Tensor& x) const;  // rstd_ sliced to x's rows

  Backend* backend_;
  Parameter weight_;
  float eps_;
  Tensor rstd_;  // [max_rows] f32
};

}  // namespace sinklab

#endif  // SINKLAB_LAYERS_RMSNORM_H_

// CPU rotary position embedding (Su et al. 2021, "RoFormer"), rotate-half convention of
// Hugging Face Llama (modeling_llama.py rotate_half / apply_rotary_pos_emb):
//   x'_i = x_i cos(t theta_i) - x_{i+d/2} sin(t theta_i)
//   x'_{i+d/2} = x_{i+d/2} cos(t theta_i) + x_i sin(t theta_i),   i < d/2.
// The backward applies the transposed (inverse) rotation: the sign of sin flips.
#include "absl/strings/str_cat.h"
#include "layers/cpu/cpu_backend.h"

namespace sinklab {
namespace {

// Rotates every head of every row of x [B, T, H, d] by +angle (sign = 1) or -angle
// (sign = -1) into y; y (=|+=) the result. y may alias x when !accumulate.
void Rotate(const Tensor& y, const Tensor& x, const Tensor& cos, const Tensor& sin, float sign,
            bool accumulate) {
  CheckCpuF32(x, "Rope");
  CheckSameShape(y, x, "Rope");
  SL_CHECK_MSG(x.rank() == 4, absl::StrCat("Rope expects [B, T, H, d], got ", x.ShapeString()));
  const int64_t batch = x.dim(0), seq = x.dim(1), heads = x.dim(2), d = x.dim(3), half = d / 2;
  SL_CHECK_MSG(d % 2 == 0 && cos.numel() >= seq * half && sin.numel() >= seq * half,
               absl::StrCat("Rope: x ", x.ShapeString(), " cos ", cos.ShapeString()));
#pragma omp parallel for schedule(static) if (x.numel() > 65536)
  for (int64_t bt = 0; bt < batch * seq; ++bt) {
    const int64_t t = bt % seq;
    const float* c = cos.f32() + t * half;
    const float* s = sin.f32() + t * half;
    for (int64_t h = 0; h < heads; ++h) {
      const float* xi = x.f32() + (bt * heads + h) * d;
      float* yi = y.f32() + (bt * heads + h) * d;
      for (int64_t i = 0; i < half; ++i) {
        const float lo = xi[i], hi = xi[i + half];
        const float sn = sign * s[i];
        const float new_lo = lo * c[i] - hi * sn;
        const float new_hi = hi * c[i] + lo * sn;
        if (accumulate) {
          yi[i] += new_lo;
          yi[i + half] += new_hi;
        } else {
          yi[i] = new_lo;
          yi[i + half] = new_hi;
        }
      }
    }
  }
}

}  // namespace

void CpuBackend::RopeForward(const Tensor& out, const Tensor& inp, const Tensor& cos,
                             const Tensor& sin) {
  Rotate(out, inp, cos, sin, 1.0f, /*accumulate=*/false);
}

void CpuBackend::RopeBackward(const Tensor& dinp, const Tensor& dout, const Tensor& cos,
                              const Tensor& sin, GradWrite dinp_write) {
  SL_CHECK_MSG(dinp.data() != dout.data(), "RopeBackward: dinp must not alias dout");
  Rotate(dinp, dout, cos, sin, -1.0f, dinp_write == GradWrite::kAccumulate);
}

}  // namespace sinklab

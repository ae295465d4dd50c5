// CPU RMSNorm (Zhang & Sennrich 2019, "Root Mean Square Layer Normalization"):
// y = x * rstd * w, rstd = 1 / sqrt(mean_j x_j^2 + eps).
//
// Backward, per row with r = rstd and g_j = dy_j * w_j:
//   dx_j = r g_j - x_j r^3 / D * sum_k g_k x_k,    dw_j += sum_rows dy_j x_j r.
#include <cmath>

#include "layers/cpu/cpu_backend.h"

namespace sinklab {

void CpuBackend::RmsNormForward(const Tensor& out, const Tensor& rstd, const Tensor& inp,
                                const Tensor& weight, float eps) {
  CheckCpuF32(inp, "RmsNormForward inp");
  CheckSameShape(out, inp, "RmsNormForward out");
  const int64_t d = weight.numel(), n = inp.numel() / d;
  SL_CHECK(inp.dim(-1) == d && rstd.numel() == n);
  const float* w = weight.f32();
#pragma omp parallel for schedule(static) if (n * d > 65536)
  for (int64_t i = 0; i < n; ++i) {
    const float* x = inp.f32() + i * d;
    float* y = out.f32() + i * d;
    float sum_sq = 0.0f;
#pragma omp simd reduction(+ : sum_sq)
    for (int64_t j = 0; j < d; ++j) sum_sq += x[j] * x[j];
    const float r = 1.0f / std::sqrt(sum_sq / static_cast<float>(d) + eps);
    rstd.f32()[i] = r;
    for (int64_t j = 0; j < d; ++j) y[j] = x[j] * r * w[j];
  }
}

void CpuBackend::RmsNormBackward(const Tensor& dinp, const Tensor& dweight, const Tensor& dout,
                                 const Tensor& inp, const Tensor& weight, const Tensor& rstd,
                                 GradWrite dinp_write) {
  CheckCpuF32(dout, "RmsNormBackward dout");
  CheckSameShape(dout, inp, "RmsNormBackward");
  const int64_t d = weight.numel(), n = inp.numel() / d;
  const float* w = weight.f32();
  if (!dinp.empty()) {
    CheckSameShape(dinp, inp, "RmsNormBackward dinp");
    const bool accumulate = dinp_write == GradWrite::kAccumulate;  // else dinp is not read
#pragma omp parallel for schedule(static) if (n * d > 65536)
    for (int64_t i = 0; i < n; ++i) {
      const float* x = inp.f32() + i * d;
      const float* dy = dout.f32() + i * d;
      float* dx = dinp.f32() + i * d;
      const float r = rstd.f32()[i];
      float dot = 0.0f;  // sum_k dy_k w_k x_k
#pragma omp simd reduction(+ : dot)
      for (int64_t j = 0; j < d; ++j) dot += dy[j] * w[j] * x[j];
      const float coef = dot * r * r * r / static_cast<float>(d);
      for (int64_t j = 0; j < d; ++j) {
        const float g = r * w[j] * dy[j] - coef * x[j];
        dx[j] = accumulate ? dx[j] + g : g;
      }
    }
  }
  if (dweight.empty()) return;
  // dweight: one thread, rows in order (deterministic; ~2 N D flops).
  float* dw = dweight.f32();
  for (int64_t i = 0; i < n; ++i) {
    const float* x = inp.f32() + i * d;
    const float* dy = dout.f32() + i * d;
    const float r = rstd.f32()[i];
    for (int64_t j = 0; j < d; ++j) dw[j] += dy[j] * x[j] * r;
  }
}

}  // namespace sinklab

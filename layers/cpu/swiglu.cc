// CPU SwiGLU (Shazeer 2020, "GLU Variants Improve Transformer"): out = silu(gate) * up,
// silu(x) = x sigmoid(x); silu'(x) = sigmoid(x) (1 + x (1 - sigmoid(x))).
#include "layers/cpu/cpu_backend.h"
#include "layers/cpu/vector_math.h"

namespace sinklab {
void CpuBackend::SwigluForward(const Tensor& out, const Tensor& gate, const Tensor& up) {
  CheckCpuF32(out, "SwigluForward");
  CheckSameShape(out, gate, "SwigluForward gate");
  CheckSameShape(out, up, "SwigluForward up");
  const float* g = gate.f32();
  const float* u = up.f32();
  float* o = out.f32();
  const int64_t n = out.numel();
#pragma omp parallel for simd schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) o[i] = g[i] * VecSigmoid(g[i]) * u[i];
}

void CpuBackend::SwigluBackward(const Tensor& dgate, const Tensor& dup, const Tensor& dout,
                                const Tensor& gate, const Tensor& up) {
  CheckCpuF32(dout, "SwigluBackward");
  CheckSameShape(dgate, dout, "SwigluBackward dgate");
  CheckSameShape(dup, dout, "SwigluBackward dup");
  const float* g = gate.f32();
  const float* u = up.f32();
  const float* dy = dout.f32();
  float* dg = dgate.f32();
  float* du = dup.f32();
  const int64_t n = dout.numel();
#pragma omp parallel for simd schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) {
    const float sig = VecSigmoid(g[i]);
    const float silu = g[i] * sig;
    du[i] = dy[i] * silu;
    dg[i] = dy[i] * u[i] * sig * (1.0f + g[i] * (1.0f - sig));
  }
}

}  // namespace sinklab

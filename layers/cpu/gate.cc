// CPU sigmoid gate of gated attention (Qiu et al. 2025): out = y * sigmoid(logits), one gate
// per group of c = C / G consecutive channels (c = 1 elementwise, c = d_h headwise).
// Backward with g = sigmoid(z): dy (+)= dout g;  dz (+)= g (1 - g) sum_{its channels} dout y.
#include "absl/strings/str_cat.h"
#include "layers/cpu/cpu_backend.h"
#include "layers/cpu/vector_math.h"

namespace sinklab {
namespace {

// Channels per gate c, after checking y [N, ...] (numel N * C) against gate [N, G].
int64_t ChannelsPerGate(const Tensor& y, const Tensor& gate) {
  CheckCpuF32(y, "SigmoidGate y");
  CheckCpuF32(gate, "SigmoidGate gate");
  SL_CHECK_MSG(gate.rank() == 2 && y.numel() % gate.numel() == 0,
               absl::StrCat("SigmoidGate: y ", y.ShapeString(), " gate ", gate.ShapeString()));
  return y.numel() / gate.numel();
}

}  // namespace

void CpuBackend::SigmoidGateForward(const Tensor& out, const Tensor& gate, const Tensor& y,
                                    const Tensor& logits) {
  const int64_t c = ChannelsPerGate(y, gate);
  CheckSameShape(out, y, "SigmoidGateForward out");
  CheckSameShape(gate, logits, "SigmoidGateForward logits");
  const int64_t n = gate.numel();
  const float* z = logits.f32();
  const float* x = y.f32();
  float* g = gate.f32();
  float* o = out.f32();
#pragma omp parallel for schedule(static) if (n * c > 65536)
  for (int64_t i = 0; i < n; ++i) {
    g[i] = VecSigmoid(z[i]);
    for (int64_t j = i * c; j < (i + 1) * c; ++j) o[j] = x[j] * g[i];
  }
}

void CpuBackend::SigmoidGateBackward(const Tensor& dy, const Tensor& dlogits, const Tensor& dout,
                                     const Tensor& y, const Tensor& gate, GradWrite write) {
  const int64_t c = ChannelsPerGate(y, gate);
  const bool add = write == GradWrite::kAccumulate;  // else the old values are not read
  CheckSameShape(dout, y, "SigmoidGateBackward dout");
  const int64_t n = gate.numel();
  const float* g = gate.f32();
  const float* x = y.f32();
  const float* d = dout.f32();
  float* dx = dy.empty() ? nullptr : dy.f32();
  float* dz = dlogits.empty() ? nullptr : dlogits.f32();
  if (dx != nullptr) CheckSameShape(dy, y, "SigmoidGateBackward dy");
  if (dz != nullptr) CheckSameShape(dlogits, gate, "SigmoidGateBackward dlogits");
#pragma omp parallel for schedule(static) if (n * c > 65536)
  for (int64_t i = 0; i < n; ++i) {
    float dgate = 0.0f;
    for (int64_t j = i * c; j < (i + 1) * c; ++j) {
      dgate += d[j] * x[j];
      if (dx != nullptr) dx[j] = (add ? dx[j] : 0.0f) + d[j] * g[i];
    }
    if (dz != nullptr) dz[i] = (add ? dz[i] : 0.0f) + dgate * g[i] * (1.0f - g[i]);
  }
}

}  // namespace sinklab

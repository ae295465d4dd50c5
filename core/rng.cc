#include "core/rng.h"

#include <cmath>

namespace sinklab {

float UniformAt(uint64_t seed, uint64_t stream, uint64_t index) {
  uint32_t out[4];
  PhiloxAt(seed, stream, index, out);
  return UintToUniform(out[0]);
}

float NormalAt(uint64_t seed, uint64_t stream, uint64_t index) {
  uint32_t out[4];
  PhiloxAt(seed, stream, index, out);
  const float u1 = UintToUniform(out[0]);
  const float u2 = UintToUniform(out[1]);
  return std::sqrt(-2.0f * std::log(u1)) * std::cos(6.28318530717958647692f * u2);
}

void FillNormal(float* x, int64_t n, float mean, float std, uint64_t seed, uint64_t stream) {
  for (int64_t i = 0; i < n; ++i) x[i] = mean + std * NormalAt(seed, stream, i);
}

}  // namespace sinklab

// Vectorizable float exp for the CPU kernels: no calls and no branches, so loops that use it
// under `#pragma omp simd` compile to vector code (glibc's expf is a scalar call unless
// -ffast-math), and the values are the same on every machine (not glibc-dependent).
#ifndef SINKLAB_LAYERS_CPU_VECTOR_MATH_H_
#define SINKLAB_LAYERS_CPU_VECTOR_MATH_H_

#include <cstdint>
#include <cstring>

namespace sinklab {

// exp(x), relative error < 1e-7 (about 1 ulp) for x in [-87, 88]; below -87.3 it returns
// exp(-87.3) ~ 1e-38 instead of a subnormal/zero; NaN stays NaN; above 88.7, exp(88.7).
// Method (Cephes expf, Moshier 1984): x = n ln2 + r with |r| <= ln2/2 (ln2 split in two
// parts, Cody & Waite 1980), exp(r) = 1 + r + r^2 P(r) with P of degree 5 (Cephes'
// coefficients), 2^n by writing the exponent bits.
#pragma omp declare simd notinbranch
inline float VecExp(float x) {
  const float clamped = x < -87.3f ? -87.3f : (x > 88.7f ? 88.7f : x);
  // n = round(x / ln2) by the 1.5 * 2^23 trick (floorf blocks GCC's vectorizer).
  constexpr float kRound = 12582912.0f;
  const float n = (clamped * 1.44269504088896341f + kRound) - kRound;
  const float r = clamped - n * 0.693359375f + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float exp_r = p * r * r + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float two_n;
  std::memcpy(&two_n, &bits, sizeof(two_n));
  const float result = exp_r * two_n;
  return x != x ? x : result;  // NaN in, NaN out (a diverged run must show it)
}

// 1 / (1 + exp(-x)).
#pragma omp declare simd notinbranch
inline float VecSigmoid(float x) { return 1.0f / (1.0f + VecExp(-x)); }

}  // namespace sinklab

#endif  // SINKLAB_LAYERS_CPU_VECTOR_MATH_H_

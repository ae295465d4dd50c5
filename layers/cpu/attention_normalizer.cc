// The one normalizer switch of the CPU attention (forward and backward, per query row).
// Notation: s_j the scaled scores of the n visible keys, p_j the weights, dp_j = dL/dp_j,
// ds_j = dL/ds_j. Every exp is max-subtracted so that no intermediate overflows.
#include "layers/cpu/attention_normalizer.h"

#include <algorithm>
#include <cmath>

#include "core/status.h"
#include "layers/cpu/vector_math.h"

namespace sinklab {
namespace {

inline float RowMax(const float* s, int64_t n, float start) {
  float max = start;
#pragma omp simd reduction(max : max)
  for (int64_t j = 0; j < n; ++j) max = s[j] > max ? s[j] : max;
  return max;
}

inline float Dot(const float* a, const float* b, int64_t n) {
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (int64_t i = 0; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

// softmax with an optional virtual logit c that takes mass but has no value:
//   p_j = exp(s_j) / (exp(c) + sum_k exp(s_k)),  lse = log(exp(c) + sum_k exp(s_k)).
// The max includes c, so a sink far above the scores does not underflow the sum.
float SoftmaxWithVirtualLogit(bool has_virtual, float virtual_logit, const float* s, int64_t n,
                              float* p) {
  const float max = has_virtual ? RowMax(s, n, virtual_logit) : RowMax(s + 1, n - 1, s[0]);
  float sum = has_virtual ? VecExp(virtual_logit - max) : 0.0f;
#pragma omp simd reduction(+ : sum)
  for (int64_t j = 0; j < n; ++j) {
    p[j] = VecExp(s[j] - max);
    sum += p[j];
  }
  const float inv_sum = 1.0f / sum;
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) p[j] *= inv_sum;
  return max + std::log(sum);
}

}  // namespace

bool NormalizerNeedsScores(AttentionNormalizer normalizer) {
  return normalizer == AttentionNormalizer::kSoftpick ||
         normalizer == AttentionNormalizer::kClippedSoftmax;
}

float NormalizeRow(const AttentionSpec& spec, float sink_logit, const float* s, int64_t n,
                   float* p) {
  switch (spec.normalizer) {
    case AttentionNormalizer::kSoftmax:
      // p_j = exp(s_j) / sum_k exp(s_k) (Vaswani et al. 2017).
      return SoftmaxWithVirtualLogit(false, 0.0f, s, n, p);
    case AttentionNormalizer::kSoftmax1:
      // p_j = exp(s_j) / (1 + sum_k exp(s_k)) (Miller 2023): a virtual logit 0.
      return SoftmaxWithVirtualLogit(true, 0.0f, s, n, p);
    case AttentionNormalizer::kSinkLogit:
      // p_j = exp(s_j) / (exp(b_h) + sum_k exp(s_k)) (gpt-oss 2025): a virtual logit b_h.
      return SoftmaxWithVirtualLogit(true, sink_logit, s, n, p);
    case AttentionNormalizer::kSoftpick: {
      // softpick (Zuhri et al. 2025, eq. 3): p_j = relu(e^s_j - 1) / (sum_k |e^s_k - 1| + eps),
      // both scaled by e^-m, m = max(0, max_k s_k): a_j = e^(s_j - m) - e^-m = e^-m (e^s_j - 1).
      const float m = RowMax(s, n, 0.0f);
      const float e_neg = VecExp(-m);
      float denom = spec.softpick_eps * e_neg;
      for (int64_t j = 0; j < n; ++j) {
        const float a = VecExp(s[j] - m) - e_neg;
        denom += std::fabs(a);
        // relu: exactly 0 for s_j <= 0, whatever the rounding of a.
        p[j] = s[j] > 0.0f ? std::max(a, 0.0f) : 0.0f;
      }
      const float inv = 1.0f / denom;
      for (int64_t j = 0; j < n; ++j) p[j] *= inv;
      return m + std::log(denom);  // log(sum_k |e^s_k - 1| + eps)
    }
    case AttentionNormalizer::kSigmoid: {
      // sigmoid attention (Ramapuram et al. 2024): p_j = sigmoid(s_j + b), no normalization.
      float sum = 0.0f;
      for (int64_t j = 0; j < n; ++j) {
        p[j] = VecSigmoid(s[j] + spec.sigmoid_bias);
        sum += p[j];
      }
      return std::log(sum);  // log of the row's total mass
    }
    case AttentionNormalizer::kClippedSoftmax: {
      // clipped softmax (Bondarenko et al. 2023, eq. 4): clip((zeta - gamma) softmax + gamma,
      // 0, 1).
      const float lse = SoftmaxWithVirtualLogit(false, 0.0f, s, n, p);
      const float stretch = spec.clip_zeta - spec.clip_gamma;
      for (int64_t j = 0; j < n; ++j) {
        p[j] = std::min(1.0f, std::max(0.0f, stretch * p[j] + spec.clip_gamma));
      }
      return lse;  // the softmax's log-sum-exp
    }
  }
  SL_CHECK_MSG(false, "unknown attention normalizer");
  return 0.0f;
}

float NormalizeRowBackward(const AttentionSpec& spec, float sink_logit, const float* p,
                           const float* s, float lse, float clipped_row_dot, const float* dp,
                           int64_t n, float* ds) {
  switch (spec.normalizer) {
    case AttentionNormalizer::kSoftmax:
    case AttentionNormalizer::kSoftmax1:
    case AttentionNormalizer::kSinkLogit: {
      // ds_j = p_j (dp_j - sum_k p_k dp_k): the virtual logit has no dp of its own.
      const float dot = Dot(p, dp, n);
#pragma omp simd
      for (int64_t j = 0; j < n; ++j) ds[j] = p[j] * (dp[j] - dot);
      if (spec.normalizer != AttentionNormalizer::kSinkLogit) return 0.0f;
      // dp_j/db = -p_j p_sink with p_sink = exp(b - lse): dL/db = -p_sink sum_j p_j dp_j.
      return -std::exp(sink_logit - lse) * dot;
    }
    case AttentionNormalizer::kSoftpick: {
      // With D = e^lse: dp_j/ds_k = e^s_k / D ([j = k][s_k > 0] - p_j sign(s_k)), so
      // ds_k = e^(s_k - lse) ([s_k > 0] dp_k - sign(s_k) sum_j p_j dp_j); at s_k = 0 both the
      // relu and |.| take derivative 0.
      const float dot = Dot(p, dp, n);
      for (int64_t k = 0; k < n; ++k) {
        const float sign = s[k] > 0.0f ? 1.0f : (s[k] < 0.0f ? -1.0f : 0.0f);
        const float own = s[k] > 0.0f ? dp[k] : 0.0f;
        ds[k] = VecExp(s[k] - lse) * (own - sign * dot);
      }
      return 0.0f;
    }
    case AttentionNormalizer::kSigmoid:
      // sigmoid' = p (1 - p).
#pragma omp simd
      for (int64_t j = 0; j < n; ++j) ds[j] = dp[j] * p[j] * (1.0f - p[j]);
      return 0.0f;
    case AttentionNormalizer::kClippedSoftmax: {
      // Bondarenko et al. 2023, eq. 4: sm_j = exp(s_j - lse); y = (zeta - gamma) sm + gamma;
      // p = clip(y, 0, 1). Gradient 0 where clipped (p exactly 0 or 1), then the softmax
      // Jacobian: dsm_j = (zeta - gamma) dp_j [0 < p_j < 1];  ds_j = sm_j (dsm_j - R) with
      // R = sum_k sm_k dsm_k. Where p_k is not clipped, (zeta - gamma) sm_k = p_k - gamma, so
      // R = sum_k (p_k - gamma) [0 < p_k < 1] dp_k (UnclippedWeight), which the caller
      // passes: with dp_k = dout . v_k it is dout . C (the forward's unclipped_values).
      const float stretch = spec.clip_zeta - spec.clip_gamma;
      for (int64_t j = 0; j < n; ++j) {
        const float dsm = (p[j] > 0.0f && p[j] < 1.0f) ? stretch * dp[j] : 0.0f;
        ds[j] = VecExp(s[j] - lse) * (dsm - clipped_row_dot);  // ds may alias dp
      }
      return 0.0f;
    }
  }
  SL_CHECK_MSG(false, "unknown attention normalizer");
  return 0.0f;
}

}  // namespace sinklab

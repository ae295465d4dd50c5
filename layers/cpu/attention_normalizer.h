// The attention normalizers of the CPU reference: one query row of scaled scores s[0, n)
// (the keys this query sees) -> weights p[0, n), and the exact backward. One switch on
// AttentionNormalizer serves every variant (DESIGN.md section 5); layers/cpu/attention.cc
// calls these per row. Formulas and the meaning of the returned `lse` are in
// layers/backend.h (AttentionNormalizer).
#ifndef SINKLAB_LAYERS_CPU_ATTENTION_NORMALIZER_H_
#define SINKLAB_LAYERS_CPU_ATTENTION_NORMALIZER_H_

#include <cstdint>

#include "layers/backend.h"

namespace sinklab {

// True when NormalizeRowBackward needs the scores s (softpick and clipped softmax: the
// weights alone do not determine the gradient where they are 0 or clipped).
bool NormalizerNeedsScores(AttentionNormalizer normalizer);

// s [n] -> p [n] (p may alias s); returns the row's lse (backend.h). sink_logit is this
// head's b_h (read by kSinkLogit only).
float NormalizeRow(const AttentionSpec& spec, float sink_logit, const float* s, int64_t n,
                   float* p);

// Clipped softmax: the weight of v_j in the row's unclipped_values C_i (layers/backend.h),
// (p_j - gamma) [0 < p_j < 1], from the row's weight p_j. Where p_j is not clipped it equals
// (zeta - gamma) sm_j, so C_i carries the backward's row sum (NormalizeRowBackward).
inline float UnclippedWeight(const AttentionSpec& spec, float p) {
  return p > 0.0f && p < 1.0f ? p - spec.clip_gamma : 0.0f;
}

// dp [n] = dL/dp -> ds [n] = dL/ds (ds may alias dp). p and lse are NormalizeRow's outputs;
// s [n] the scores (only read when NormalizerNeedsScores, may be null otherwise).
// clipped_row_dot: kClippedSoftmax's row sum sum_k sm_k dsm_k = sum_k UnclippedWeight(p_k)
// dp_k (= dout_i . C_i in the kernel; unread by the other normalizers). Returns this row's
// contribution to dL/d sink_logit (0 unless kSinkLogit).
float NormalizeRowBackward(const AttentionSpec& spec, float sink_logit, const float* p,
                           const float* s, float lse, float clipped_row_dot, const float* dp,
                           int64_t n, float* ds);

}  // namespace sinklab

#endif  // SINKLAB_LAYERS_CPU_ATTENTION_NORMALIZER_H_

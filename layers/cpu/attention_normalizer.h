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

// dp [n] = dL/dp -> ds [n] = dL/ds (ds may alias dp). p and lse are NormalizeRow's outputs;
// s [n] the scores (only read when NormalizerNeedsScores, may be null otherwise). Returns
// this row's contribution to dL/d sink_logit (0 unless kSinkLogit).
float NormalizeRowBackward(const AttentionSpec& spec, float sink_logit, const float* p,
                           const float* s, float lse, const float* dp, int64_t n, float* ds);

}  // namespace sinklab

#endif  // SINKLAB_LAYERS_CPU_ATTENTION_NORMALIZER_H_

// Device-side math of the attention normalizers (layers/backend.h, AttentionNormalizer), shared
// by the fused forward (online, one pass over the keys), the probs kernel and the backward
// (weights recomputed from the stored lse). The CPU reference is layers/cpu/
// attention_normalizer.cc; the formulas here are the same, rearranged for a running max.
//
// Layout convention of every caller: the 4 lanes 4r..4r+3 of a warp (a "quad") hold the
// columns of one row, so a row reduction is two xor-shuffles (QuadMax / QuadSum). This is the
// generic kernels' layout and also that of mma.sync's m16n8 accumulators.
#ifndef SINKLAB_LAYERS_CUDA_ATTENTION_NORMALIZER_CUH_
#define SINKLAB_LAYERS_CUDA_ATTENTION_NORMALIZER_CUH_

#include <cuda_runtime.h>

#include "layers/backend.h"
#include "layers/cuda/kernel_util.cuh"  // Sigmoid

namespace sinklab {
namespace cuda {

// AttentionSpec as kernel arguments.
struct NormalizerArgs {
  AttentionNormalizer kind;
  float scale;         // s_ij = scale * q_i . k_j
  float softpick_eps;  // kSoftpick
  float sigmoid_bias;  // kSigmoid: b
  float clip_gamma;    // kClippedSoftmax
  float clip_zeta;     // kClippedSoftmax
};

inline NormalizerArgs NormalizerArgsOf(const AttentionSpec& spec) {
  return NormalizerArgs{spec.normalizer,   spec.scale,      spec.softpick_eps,
                        spec.sigmoid_bias, spec.clip_gamma, spec.clip_zeta};
}

__device__ __forceinline__ float QuadMax(float v) {
  v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 1));
  return fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 2));
}
__device__ __forceinline__ float QuadSum(float v) {
  v += __shfl_xor_sync(0xffffffffu, v, 1);
  return v + __shfl_xor_sync(0xffffffffu, v, 2);
}

// ---- Forward: online normalization (Milakov & Gimelshein 2018; Dao et al. 2022) ----------
// One query row's running state: every exp is taken relative to the running max m, so the
// row's normalizer so far is l e^m and its output numerator O e^m (O kept by the caller).
struct OnlineRow {
  float m;
  float l;
};

// The state before any key: the virtual term of softmax1 (logit 0) and of the sink logit
// (logit b_h) is already in l, with m covering it (as the reference's max includes it);
// softpick starts at m = 0 (its reference max is max(0, max_k s_k), so e^-m <= 1); sigmoid
// never shifts (its weights are in (0, 1)).
__device__ __forceinline__ OnlineRow StartRow(const NormalizerArgs& n, float sink_logit) {
  switch (n.kind) {
    case AttentionNormalizer::kSoftmax1:
      return {0.0f, 1.0f};
    case AttentionNormalizer::kSinkLogit:
      return {sink_logit, 1.0f};
    case AttentionNormalizer::kSoftpick:
    case AttentionNormalizer::kSigmoid:
      return {0.0f, 0.0f};
    default:  // softmax, and the first (softmax) pass of clipped softmax
      return {-INFINITY, 0.0f};
  }
}

// Raises m to cover a tile whose largest visible score is tile_max (already QuadMax'ed;
// -inf when the tile has none) and rescales l; returns alpha = e^(m_old - m_new), the factor
// the caller applies to O.
__device__ __forceinline__ float RaiseMax(const NormalizerArgs& n, OnlineRow& row, float tile_max) {
  if (n.kind == AttentionNormalizer::kSigmoid) return 1.0f;
  const float m_new = fmaxf(row.m, tile_max);
  if (m_new == -INFINITY) return 1.0f;        // softmax before its first visible key
  const float alpha = __expf(row.m - m_new);  // 0 when m_old = -inf
  row.m = m_new;
  row.l *= alpha;
  return alpha;
}

// One visible key's terms relative to e^m (after RaiseMax): `weight` multiplies v_j in O,
// `mass` is its term of l. e_neg_m = e^-m (read by softpick only).
struct OnlineTerm {
  float weight;
  float mass;
};
__device__ __forceinline__ OnlineTerm OnlineTermOf(const NormalizerArgs& n, float m, float e_neg_m,
                                                   float s) {
  switch (n.kind) {
    case AttentionNormalizer::kSoftpick: {
      // softpick (Zuhri et al. 2025, eq. 3): |e^s - 1| e^-m = |e^(s-m) - e^-m|; the
      // numerator relu(.) is exactly 0 for s <= 0 (as the reference).
      const float a = __expf(s - m) - e_neg_m;
      return {s > 0.0f ? fmaxf(a, 0.0f) : 0.0f, fabsf(a)};
    }
    case AttentionNormalizer::kSigmoid: {
      const float p = Sigmoid(s + n.sigmoid_bias);  // Ramapuram et al. 2024
      return {p, p};
    }
    default: {
      const float e = __expf(s - m);
      return {e, e};
    }
  }
}

// After the last key: writes the row's lse (backend.h) and returns the factor of O (1 / the
// normalizer; 1 for sigmoid). Not for clipped softmax's output pass (its weights are final).
__device__ __forceinline__ float FinishRow(const NormalizerArgs& n, const OnlineRow& row,
                                           float* lse) {
  switch (n.kind) {
    case AttentionNormalizer::kSoftpick: {
      const float denom = row.l + n.softpick_eps * __expf(-row.m);  // (sum|e^s - 1| + eps) e^-m
      *lse = row.m + logf(denom);
      return 1.0f / denom;
    }
    case AttentionNormalizer::kSigmoid:
      *lse = logf(row.l);  // log of the row's total mass
      return 1.0f;
    default:
      *lse = row.m + logf(row.l);
      return 1.0f / row.l;
  }
}

// ---- Weights recomputed from the stored lse (probs, clipped softmax's output, backward) ----
// p_ij of a visible key, exactly as backend.h writes it for each normalizer.
__device__ __forceinline__ float WeightFromLse(const NormalizerArgs& n, float s, float lse) {
  switch (n.kind) {
    case AttentionNormalizer::kSoftpick:
      return s > 0.0f ? fmaxf(__expf(s - lse) - __expf(-lse), 0.0f) : 0.0f;
    case AttentionNormalizer::kSigmoid:
      return Sigmoid(s + n.sigmoid_bias);
    case AttentionNormalizer::kClippedSoftmax: {
      // Bondarenko et al. 2023, eq. 4: clip((zeta - gamma) softmax + gamma, 0, 1).
      const float y = (n.clip_zeta - n.clip_gamma) * __expf(s - lse) + n.clip_gamma;
      return fminf(1.0f, fmaxf(0.0f, y));
    }
    default:
      return __expf(s - lse);
  }
}

// Clipped softmax: the weight of v_j in the forward's unclipped_values C_i (backend.h),
// (p - gamma) [0 < p < 1] from the weight p of WeightFromLse. Where p is not clipped it is
// (zeta - gamma) sm, so dout_i . C_i = sum_j sm_ij dsm_ij, the backward's row sum
// (layers/cpu/attention_normalizer.cc derives it).
__device__ __forceinline__ float UnclippedWeight(const NormalizerArgs& n, float p) {
  return p > 0.0f && p < 1.0f ? p - n.clip_gamma : 0.0f;
}

// ---- Backward ------------------------------------------------------------------------------
// Whether ds needs the row sum D_i = sum_j p_ij dp_ij = dout_i . out_i (every variant but
// sigmoid, which needs none, and clipped softmax, whose row sum is dout_i . C_i with C the
// forward's unclipped_values).
__device__ __forceinline__ bool UsesOutputDot(const NormalizerArgs& n) {
  return n.kind != AttentionNormalizer::kSigmoid && n.kind != AttentionNormalizer::kClippedSoftmax;
}

constexpr float kLog2e = 1.4426950408889634f;
// 2^x (the SM's ex2 unit, as __expf uses; flushes denormals).
__device__ __forceinline__ float Exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

// A score s and its exponent against the row's lse in base 2, x2 = (s - lse) log2 e. The
// tensor-core kernels form both from the raw product r = q_i . k_j and the row's lse2 = lse
// log2 e: s = scale r, x2 = r (scale log2 e) - lse2, one FFMA where e^(s - lse) took a
// multiply, a subtraction and another multiply (s is dead code for softmax).
struct Score {
  float s;
  float x2;
};
__device__ __forceinline__ Score ScoreOf(float s, float lse) { return {s, (s - lse) * kLog2e}; }
__device__ __forceinline__ Score RawScoreOf(float r, float scale, float lse2) {
  return {scale * r, fmaf(r, scale * kLog2e, -lse2)};
}
// The tensor-core backward's score of a raw product r, given the row's lse and lse2: RawScoreOf,
// except for clipped softmax. With zeta = 1 (the default) its weight jumps where sm = 1 (y =
// zeta: a row's only visible key), and there RawScoreOf can round sm just below 1 and count a
// weight that the forward clipped as unclipped (ds = (zeta - gamma) dp where the forward's row
// sum has no such term). So it takes (s - lse) log2 e, whose Exp2 is the forward's
// __expf(s - lse) bit for bit (the same multiply, 0f3FB8AA3B, and ex2.approx).
template <AttentionNormalizer kKind>
__device__ __forceinline__ Score BackwardScoreOf(float r, float scale, float lse, float lse2) {
  if constexpr (kKind == AttentionNormalizer::kClippedSoftmax) return ScoreOf(scale * r, lse);
  return RawScoreOf(r, scale, lse2);
}

// The weight p and dL/ds of one visible key from its score (and the row's lse), dp = dout_i .
// v_j and the row sum `row_dot` (UsesOutputDot: dout_i . out_i; clipped softmax: dout_i . C_i =
// sum_k sm_k dsm_k; sigmoid: unused). The derivations are layers/cpu/attention_normalizer.cc's.
struct WeightGrad {
  float p;
  float ds;
};
// e_neg_lse = e^-lse, read by softpick only: a caller whose elements belong to many rows (the
// dk/dv kernel) passes the row's, computed once; the overload below takes it per element.
__device__ __forceinline__ WeightGrad WeightGradOf(const NormalizerArgs& n, Score score, float dp,
                                                   float row_dot, float e_neg_lse) {
  const float s = score.s;
  switch (n.kind) {
    case AttentionNormalizer::kSoftpick: {
      // ds = e^(s - lse) ([s > 0] dp - sign(s) D); derivative 0 at s = 0.
      const float e = Exp2(score.x2);
      const float p = s > 0.0f ? fmaxf(e - e_neg_lse, 0.0f) : 0.0f;
      const float sign = s > 0.0f ? 1.0f : (s < 0.0f ? -1.0f : 0.0f);
      return {p, e * ((s > 0.0f ? dp : 0.0f) - sign * row_dot)};
    }
    case AttentionNormalizer::kSigmoid: {
      const float p = Sigmoid(s + n.sigmoid_bias);
      return {p, dp * p * (1.0f - p)};
    }
    case AttentionNormalizer::kClippedSoftmax: {
      // ds = sm (dsm - sum_k sm_k dsm_k), dsm = (zeta - gamma) dp [0 < y < 1].
      const float stretch = n.clip_zeta - n.clip_gamma;
      const float sm = Exp2(score.x2);
      const float y = stretch * sm + n.clip_gamma;
      const bool inside = y > 0.0f && y < 1.0f;
      return {fminf(1.0f, fmaxf(0.0f, y)), sm * ((inside ? stretch * dp : 0.0f) - row_dot)};
    }
    default: {
      // softmax, softmax1, sink logit: ds = p (dp - D) (the virtual term has no dp).
      const float p = Exp2(score.x2);
      return {p, p * (dp - row_dot)};
    }
  }
}
__device__ __forceinline__ WeightGrad WeightGradOf(const NormalizerArgs& n, float s, float lse,
                                                   float dp, float row_dot) {
  return WeightGradOf(n, ScoreOf(s, lse), dp, row_dot,
                      n.kind == AttentionNormalizer::kSoftpick ? __expf(-lse) : 0.0f);
}

}  // namespace cuda
}  // namespace sinklab

#endif  // SINKLAB_LAYERS_CUDA_ATTENTION_NORMALIZER_CUH_

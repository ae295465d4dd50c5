// CPU causal multi-head attention with grouped-query attention, materialising the weights.
//
// Per batch b and query head h (kv head g = h / (H / Hkv)), for query i:
//   s_ij = scale * q_i . k_j,  j <= i                  (Vaswani et al. 2017, eq. 1)
//   p_i. = Normalize(s_i.)      one switch, NormalizeRow / NormalizeRowBackward below
//   out_i = sum_j p_ij v_j
// Backward: dp_ij = dout_i . v_j;  dv_j += p_ij dout_i;  ds_i. = NormalizeBackward(p, dp);
//   dq_i += scale * sum_j ds_ij k_j;  dk_j += scale * ds_ij q_i.
// Threads: forward over (b, h); backward over (b, g), looping over the query heads of the
// group in order, so dk and dv of a kv head are summed by one thread in a fixed order.
#include <algorithm>
#include <cmath>
#include <vector>

#include "absl/strings/str_cat.h"
#include "layers/cpu/cpu_backend.h"

namespace sinklab {
namespace {

// Below this many multiply-adds a call runs on one thread (a parallel region costs more).
constexpr int64_t kParallelWork = int64_t{1} << 16;

struct AttentionDims {
  int64_t batch, seq, heads, kv_heads, d;
};

AttentionDims CheckAttentionShapes(const Tensor& out, const Tensor& probs, const Tensor& lse,
                                   const Tensor& q, const Tensor& k, const Tensor& v) {
  for (const Tensor* t : {&out, &probs, &lse, &q, &k, &v}) CheckCpuF32(*t, "Attention");
  SL_CHECK_MSG(q.rank() == 4 && k.rank() == 4,
               absl::StrCat("Attention expects q [B, T, H, d], got ", q.ShapeString()));
  const AttentionDims dims{q.dim(0), q.dim(1), q.dim(2), k.dim(2), q.dim(3)};
  const std::string shapes = absl::StrCat("q ", q.ShapeString(), " k ", k.ShapeString(), " v ",
                                          v.ShapeString(), " probs ", probs.ShapeString());
  SL_CHECK_MSG(dims.kv_heads > 0 && dims.heads % dims.kv_heads == 0 && k.dim(0) == dims.batch &&
                   k.dim(1) == dims.seq && k.dim(3) == dims.d,
               shapes);
  CheckSameShape(k, v, "Attention k/v");
  CheckSameShape(out, q, "Attention out/q");
  SL_CHECK_MSG(probs.numel() == dims.batch * dims.heads * dims.seq * dims.seq &&
                   lse.numel() == dims.batch * dims.heads * dims.seq,
               shapes);
  return dims;
}

inline float Dot(const float* a, const float* b, int64_t n) {
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (int64_t i = 0; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

// y += alpha * x.
inline void Axpy(float* y, float alpha, const float* x, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) y[i] += alpha * x[i];
}

// The normalizer: scores s[0, n) of one query row -> weights p[0, n) (p may alias s).
// Returns the row's log-sum-exp log sum_j exp(s_j).
float NormalizeRow(AttentionNormalizer normalizer, const float* s, int64_t n, float* p) {
  switch (normalizer) {
    case AttentionNormalizer::kSoftmax: {
      // p_j = exp(s_j - lse) (Vaswani et al. 2017), max-subtracted for range.
      float max = s[0];
      for (int64_t j = 1; j < n; ++j) max = std::fmax(max, s[j]);
      float sum = 0.0f;
      for (int64_t j = 0; j < n; ++j) sum += std::exp(s[j] - max);
      const float lse = max + std::log(sum);
      for (int64_t j = 0; j < n; ++j) p[j] = std::exp(s[j] - lse);
      return lse;
    }
  }
  SL_CHECK_MSG(false, "unknown attention normalizer");
  return 0.0f;
}

// Backward of the normalizer: dp[0, n) (dL/dp) -> ds[0, n) (dL/ds); ds may alias dp.
void NormalizeRowBackward(AttentionNormalizer normalizer, const float* p, const float* dp,
                          int64_t n, float* ds) {
  switch (normalizer) {
    case AttentionNormalizer::kSoftmax: {
      // softmax Jacobian: ds_j = p_j (dp_j - sum_k p_k dp_k).
      const float dot = Dot(p, dp, n);
      for (int64_t j = 0; j < n; ++j) ds[j] = p[j] * (dp[j] - dot);
      return;
    }
  }
  SL_CHECK_MSG(false, "unknown attention normalizer");
}

}  // namespace

void CpuBackend::AttentionForward(const Tensor& out, const Tensor& probs, const Tensor& lse,
                                  const Tensor& q, const Tensor& k, const Tensor& v,
                                  const AttentionSpec& spec) {
  const AttentionDims dims = CheckAttentionShapes(out, probs, lse, q, k, v);
  const int64_t T = dims.seq, H = dims.heads, Hkv = dims.kv_heads, d = dims.d;
  const int64_t group = H / Hkv;
  const bool parallel = dims.batch * H * T * T * d > kParallelWork;
#pragma omp parallel for collapse(2) schedule(static) if (parallel)
  for (int64_t b = 0; b < dims.batch; ++b) {
    for (int64_t h = 0; h < H; ++h) {
      const int64_t g = h / group;
      for (int64_t i = 0; i < T; ++i) {
        const float* qi = q.f32() + ((b * T + i) * H + h) * d;
        float* p = probs.f32() + ((b * H + h) * T + i) * T;
        // Scores into the probability row, normalised in place; zero past the diagonal.
        for (int64_t j = 0; j <= i; ++j) {
          p[j] = spec.scale * Dot(qi, k.f32() + ((b * T + j) * Hkv + g) * d, d);
        }
        lse.f32()[(b * H + h) * T + i] = NormalizeRow(spec.normalizer, p, i + 1, p);
        std::fill(p + i + 1, p + T, 0.0f);
        float* oi = out.f32() + ((b * T + i) * H + h) * d;
        std::fill(oi, oi + d, 0.0f);
        for (int64_t j = 0; j <= i; ++j) Axpy(oi, p[j], v.f32() + ((b * T + j) * Hkv + g) * d, d);
      }
    }
  }
}

void CpuBackend::AttentionBackward(const Tensor& dq, const Tensor& dk, const Tensor& dv,
                                   const Tensor& dout, const Tensor& q, const Tensor& k,
                                   const Tensor& v, const Tensor& probs, const Tensor& lse,
                                   const AttentionSpec& spec) {
  const AttentionDims dims = CheckAttentionShapes(dout, probs, lse, q, k, v);
  CheckSameShape(dq, q, "AttentionBackward dq");
  CheckSameShape(dk, k, "AttentionBackward dk");
  CheckSameShape(dv, v, "AttentionBackward dv");
  const int64_t T = dims.seq, H = dims.heads, Hkv = dims.kv_heads, d = dims.d;
  const int64_t group = H / Hkv;
  const bool parallel = dims.batch * H * T * T * d > kParallelWork;
#pragma omp parallel if (parallel)
  {
    std::vector<float> ds(T);  // dL/dp, then dL/ds, of one query row
#pragma omp for collapse(2) schedule(static)
    for (int64_t b = 0; b < dims.batch; ++b) {
      for (int64_t g = 0; g < Hkv; ++g) {
        for (int64_t h = g * group; h < (g + 1) * group; ++h) {
          for (int64_t i = 0; i < T; ++i) {
            const float* qi = q.f32() + ((b * T + i) * H + h) * d;
            const float* doi = dout.f32() + ((b * T + i) * H + h) * d;
            const float* p = probs.f32() + ((b * H + h) * T + i) * T;
            float* dqi = dq.f32() + ((b * T + i) * H + h) * d;
            for (int64_t j = 0; j <= i; ++j) {
              const int64_t kv_row = ((b * T + j) * Hkv + g) * d;
              ds[j] = Dot(doi, v.f32() + kv_row, d);
              Axpy(dv.f32() + kv_row, p[j], doi, d);
            }
            NormalizeRowBackward(spec.normalizer, p, ds.data(), i + 1, ds.data());
            for (int64_t j = 0; j <= i; ++j) {
              const int64_t kv_row = ((b * T + j) * Hkv + g) * d;
              const float dsj = spec.scale * ds[j];
              Axpy(dqi, dsj, k.f32() + kv_row, d);
              Axpy(dk.f32() + kv_row, dsj, qi, d);
            }
          }
        }
      }
    }
  }
}

}  // namespace sinklab

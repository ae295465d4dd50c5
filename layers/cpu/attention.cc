// CPU causal multi-head attention with grouped-query attention, materialising the weights.
//
// Per batch b and query head h (kv head g = h / (H / Hkv)), for query i:
//   s_ij = scale * q_i . k_j,  j <= i                  (Vaswani et al. 2017, eq. 1)
//   p_i. = Normalize(s_i.)      one switch: NormalizeRow / NormalizeRowBackward below
//   out_i = sum_j p_ij v_j
// Backward: dp_ij = dout_i . v_j;  dv_j += p_ij dout_i;  ds_i. = NormalizeBackward(p, dp);
//   dq_i += scale * sum_j ds_ij k_j;  dk_j += scale * sum_i ds_ij q_i.
//
// Plan: the products are Gemm calls (layers/cpu/gemm.h) on strided views of one head (no
// copies), over steps of kQueryRows queries; a step touches keys [0, its last query], so
// the causal upper triangle is skipped except inside the step's diagonal block (where the
// weights are exact zeros). The probability rows double as the score buffer.
// Threads: forward over (b, h); backward over (b, g), looping over the query heads of the
// group in order, so dk and dv of a kv head are summed by one thread in a fixed order.
#include <algorithm>
#include <cmath>
#include <vector>

#include "absl/strings/str_cat.h"
#include "layers/cpu/cpu_backend.h"
#include "layers/cpu/gemm.h"
#include "layers/cpu/vector_math.h"

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

// The normalizer: scores s[0, n) of one query row -> weights p[0, n) (p may alias s).
// Returns the row's log-sum-exp log sum_j exp(s_j).
float NormalizeRow(AttentionNormalizer normalizer, const float* s, int64_t n, float* p) {
  switch (normalizer) {
    case AttentionNormalizer::kSoftmax: {
      // p_j = exp(s_j - lse) (Vaswani et al. 2017), max-subtracted for range.
      float max = s[0];
#pragma omp simd reduction(max : max)
      for (int64_t j = 1; j < n; ++j) max = s[j] > max ? s[j] : max;
      float sum = 0.0f;
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

// Rows of queries per step: step r covers queries [r * kQueryRows, ...) and, causally,
// only keys [0, end of the step), so the masked upper triangle is (mostly) not computed.
constexpr int64_t kQueryRows = 32;

// One (batch, query head) pair's matrices, as strided views into the [B, T, H, d] tensors:
// q, out, dout, dq are [T, d] with row stride H*d; k, v, dk, dv [T, d] with row stride Hkv*d.
struct HeadViews {
  int64_t q_offset, kv_offset, q_stride, kv_stride;
  StridedMatrix Q(const Tensor& x) const { return {x.f32() + q_offset, q_stride, 1}; }
  StridedMatrix KV(const Tensor& x) const { return {x.f32() + kv_offset, kv_stride, 1}; }
  float* QRow(const Tensor& x, int64_t i) const { return x.f32() + q_offset + i * q_stride; }
  float* KVRow(const Tensor& x, int64_t i) const { return x.f32() + kv_offset + i * kv_stride; }
};

HeadViews ViewsOf(const AttentionDims& dims, int64_t b, int64_t h) {
  const int64_t g = h / (dims.heads / dims.kv_heads);
  return HeadViews{(b * dims.seq * dims.heads + h) * dims.d,
                   (b * dims.seq * dims.kv_heads + g) * dims.d, dims.heads * dims.d,
                   dims.kv_heads * dims.d};
}

}  // namespace

void CpuBackend::AttentionForward(const Tensor& out, const Tensor& probs, const Tensor& lse,
                                  const Tensor& q, const Tensor& k, const Tensor& v,
                                  const AttentionSpec& spec) {
  const AttentionDims dims = CheckAttentionShapes(out, probs, lse, q, k, v);
  const int64_t T = dims.seq, H = dims.heads, d = dims.d;
  const bool parallel = dims.batch * H * T * T * d > kParallelWork;
#pragma omp parallel for collapse(2) schedule(static) if (parallel)
  for (int64_t b = 0; b < dims.batch; ++b) {
    for (int64_t h = 0; h < H; ++h) {
      const HeadViews head = ViewsOf(dims, b, h);
      float* p = probs.f32() + (b * H + h) * T * T;  // [T, T]: scores, then weights
      float* row_lse = lse.f32() + (b * H + h) * T;
      for (int64_t i0 = 0; i0 < T; i0 += kQueryRows) {
        const int64_t i1 = std::min(T, i0 + kQueryRows), rows = i1 - i0;
        // Raw scores q_i . k_j for queries [i0, i1) and keys [0, i1).
        GemmOneThread(p + i0 * T, T, head.Q(q).FromRow(i0), head.KV(k).Transposed(), rows, i1,
                      d, /*accumulate=*/false);
        for (int64_t i = i0; i < i1; ++i) {
          float* row = p + i * T;
          for (int64_t j = 0; j <= i; ++j) row[j] *= spec.scale;
          row_lse[i] = NormalizeRow(spec.normalizer, row, i + 1, row);
          std::fill(row + i + 1, row + T, 0.0f);  // causal mask
        }
        // out_i = sum_{j < i1} p_ij v_j (p_ij = 0 past the diagonal).
        GemmOneThread(head.QRow(out, i0), head.q_stride, StridedMatrix{p + i0 * T, T, 1},
                      head.KV(v), rows, d, i1, /*accumulate=*/false);
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
    std::vector<float> ds(kQueryRows * T);  // dL/dp, then dL/ds, of one step's query rows
#pragma omp for collapse(2) schedule(static)
    for (int64_t b = 0; b < dims.batch; ++b) {
      for (int64_t g = 0; g < Hkv; ++g) {
        for (int64_t h = g * group; h < (g + 1) * group; ++h) {
          const HeadViews head = ViewsOf(dims, b, h);
          const float* p = probs.f32() + (b * H + h) * T * T;
          for (int64_t i0 = 0; i0 < T; i0 += kQueryRows) {
            const int64_t i1 = std::min(T, i0 + kQueryRows), rows = i1 - i0;
            const StridedMatrix p_rows{p + i0 * T, T, 1};  // [rows, i1]
            const StridedMatrix ds_rows{ds.data(), T, 1};  // [rows, i1]
            // dv_j += sum_i p_ij dout_i   (dv[0, i1) += p_rows^T dout[i0, i1)).
            GemmOneThread(head.KVRow(dv, 0), head.kv_stride, p_rows.Transposed(),
                          head.Q(dout).FromRow(i0), i1, d, rows, /*accumulate=*/true);
            // dp_ij = dout_i . v_j, then ds = scale * NormalizeBackward(p, dp).
            GemmOneThread(ds.data(), T, head.Q(dout).FromRow(i0), head.KV(v).Transposed(), rows,
                          i1, d, /*accumulate=*/false);
            for (int64_t i = i0; i < i1; ++i) {
              float* row = ds.data() + (i - i0) * T;
              NormalizeRowBackward(spec.normalizer, p + i * T, row, i + 1, row);
              for (int64_t j = 0; j <= i; ++j) row[j] *= spec.scale;
              std::fill(row + i + 1, row + i1, 0.0f);
            }
            // dq_i += sum_j ds_ij k_j;  dk_j += sum_i ds_ij q_i.
            GemmOneThread(head.QRow(dq, i0), head.q_stride, ds_rows, head.KV(k), rows, d, i1,
                          /*accumulate=*/true);
            GemmOneThread(head.KVRow(dk, 0), head.kv_stride, ds_rows.Transposed(),
                          head.Q(q).FromRow(i0), i1, d, rows, /*accumulate=*/true);
          }
        }
      }
    }
  }
}

}  // namespace sinklab

// CPU causal multi-head attention with grouped-query attention, materialising the weights.
//
// Per batch b and query head h (kv head g = h / (H / Hkv)), for query i over the keys it
// sees, j < n_i = i + 1 + (K - S) (the K - S leading bias keys are visible to all):
//   s_ij = scale * q_i . k_j                           (Vaswani et al. 2017, eq. 1)
//   p_i. = Normalize(s_i.)      one switch: NormalizeRow / NormalizeRowBackward
//                               (layers/cpu/attention_normalizer.cc)
//   out_i = sum_j p_ij v_j
//   C_i = sum_j UnclippedWeight(p_ij) v_j       (clipped softmax only: unclipped_values)
// Backward: dp_ij = dout_i . v_j;  dv_j += p_ij dout_i;  ds_i. = NormalizeBackward(p, dp)
//   (clipped softmax: with its row sum dout_i . C_i);
//   dq_i += scale * sum_j ds_ij k_j;  dk_j += scale * sum_i ds_ij q_i;  db_h += per-row
//   sink-logit terms (summed per (b, h), then over b in order).
//
// Plan: the products are Gemm calls (layers/cpu/gemm.h) on strided views of one head (no
// copies), over steps of kQueryRows queries; a step touches keys [0, its last query's n_i),
// so the causal upper triangle is skipped except inside the step's diagonal block (where the
// weights are exact zeros). The probability rows double as the score buffer. Normalizers
// whose backward needs the scores (softpick, clipped softmax) recompute them there with
// one more Gemm per step.
// Row statistics (AttentionRowStats) reduce the stored probs row by row, sums in double.
// Threads: forward over (b, h); backward over (b, g), looping over the query heads of the
// group in order, so dk and dv of a kv head are summed by one thread in a fixed order.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "layers/cpu/attention_normalizer.h"
#include "layers/cpu/cpu_backend.h"
#include "layers/cpu/gemm.h"

namespace sinklab {
namespace {

// Below this many multiply-adds a call runs on one thread (a parallel region costs more).
constexpr int64_t kParallelWork = int64_t{1} << 16;

struct AttentionDims {
  int64_t batch, seq, keys, heads, kv_heads, d;  // B, S, K, H, Hkv, d
  int64_t bias_keys() const { return keys - seq; }
};

AttentionDims CheckAttentionShapes(const Tensor& out, const Tensor& probs, const Tensor& lse,
                                   const Tensor& unclipped_values, const Tensor& q, const Tensor& k,
                                   const Tensor& v, const Tensor& sink_logit,
                                   const AttentionSpec& spec) {
  for (const Tensor* t : {&out, &probs, &lse, &q, &k, &v}) CheckCpuF32(*t, "Attention");
  SL_CHECK_MSG(q.rank() == 4 && k.rank() == 4,
               absl::StrCat("Attention expects q [B, S, H, d], got ", q.ShapeString()));
  const AttentionDims dims{q.dim(0), q.dim(1), k.dim(1), q.dim(2), k.dim(2), q.dim(3)};
  const std::string shapes = absl::StrCat("q ", q.ShapeString(), " k ", k.ShapeString(), " v ",
                                          v.ShapeString(), " probs ", probs.ShapeString());
  SL_CHECK_MSG(dims.kv_heads > 0 && dims.heads % dims.kv_heads == 0 && k.dim(0) == dims.batch &&
                   dims.keys >= dims.seq && k.dim(3) == dims.d,
               shapes);
  CheckSameShape(k, v, "Attention k/v");
  CheckSameShape(out, q, "Attention out/q");
  SL_CHECK_MSG(probs.numel() == dims.batch * dims.heads * dims.seq * dims.keys &&
                   lse.numel() == dims.batch * dims.heads * dims.seq,
               shapes);
  if (spec.normalizer == AttentionNormalizer::kClippedSoftmax) {
    CheckCpuF32(unclipped_values, "Attention unclipped_values");
    CheckSameShape(unclipped_values, q, "Attention unclipped_values/q");
  } else {
    SL_CHECK_MSG(unclipped_values.empty(),
                 absl::StrCat("Attention: unclipped_values ", unclipped_values.ShapeString(),
                              " is for clipped softmax only; expected it empty"));
  }
  if (spec.normalizer == AttentionNormalizer::kSinkLogit) {
    CheckCpuF32(sink_logit, "Attention sink_logit");
    SL_CHECK_MSG(sink_logit.numel() == dims.heads,
                 absl::StrCat("sink_logit ", sink_logit.ShapeString(), " for ", shapes));
  }
  return dims;
}

// a . b over n entries, summed in order.
float Dot(const float* a, const float* b, int64_t n) {
  float sum = 0.0f;
  for (int64_t i = 0; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

float SinkLogitOf(const Tensor& sink_logit, const AttentionSpec& spec, int64_t h) {
  return spec.normalizer == AttentionNormalizer::kSinkLogit ? sink_logit.f32()[h] : 0.0f;
}

// Rows of queries per step: step r covers queries [r * kQueryRows, ...) and, causally,
// only keys [0, bias keys + end of the step), so the masked upper triangle is (mostly) not
// computed.
constexpr int64_t kQueryRows = 32;

// One (batch, query head) pair's matrices, as strided views into the [B, T, H, d] tensors:
// q, out, dout, dq are [S, d] with row stride H*d; k, v, dk, dv [K, d] with row stride Hkv*d.
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
                   (b * dims.keys * dims.kv_heads + g) * dims.d, dims.heads * dims.d,
                   dims.kv_heads * dims.d};
}

}  // namespace

void CpuBackend::AttentionForward(const Tensor& out, const Tensor& probs, const Tensor& lse,
                                  const Tensor& unclipped_values, const Tensor& q, const Tensor& k,
                                  const Tensor& v, const Tensor& sink_logit,
                                  const AttentionSpec& spec) {
  const AttentionDims dims =
      CheckAttentionShapes(out, probs, lse, unclipped_values, q, k, v, sink_logit, spec);
  const int64_t S = dims.seq, K = dims.keys, H = dims.heads, d = dims.d;
  const int64_t bias = dims.bias_keys();
  const bool clipped = spec.normalizer == AttentionNormalizer::kClippedSoftmax;
  const bool parallel = dims.batch * H * S * K * d > kParallelWork;
#pragma omp parallel if (parallel)
  {
    // Clipped softmax: UnclippedWeight of one step's weights [kQueryRows, K].
    std::vector<float> unclipped(clipped ? kQueryRows * K : 0);
#pragma omp for collapse(2) schedule(static)
    for (int64_t b = 0; b < dims.batch; ++b) {
      for (int64_t h = 0; h < H; ++h) {
        const HeadViews head = ViewsOf(dims, b, h);
        const float sink = SinkLogitOf(sink_logit, spec, h);
        float* p = probs.f32() + (b * H + h) * S * K;  // [S, K]: scores, then weights
        float* row_lse = lse.f32() + (b * H + h) * S;
        for (int64_t i0 = 0; i0 < S; i0 += kQueryRows) {
          const int64_t i1 = std::min(S, i0 + kQueryRows), rows = i1 - i0, keys = bias + i1;
          // Raw scores q_i . k_j for queries [i0, i1) and keys [0, keys).
          GemmOneThread(p + i0 * K, K, head.Q(q).FromRow(i0), head.KV(k).Transposed(), rows, keys,
                        d, /*accumulate=*/false);
          for (int64_t i = i0; i < i1; ++i) {
            float* row = p + i * K;
            const int64_t seen = bias + i + 1;
            for (int64_t j = 0; j < seen; ++j) row[j] *= spec.scale;
            row_lse[i] = NormalizeRow(spec, sink, row, seen, row);
            std::fill(row + seen, row + K, 0.0f);  // causal mask
          }
          // out_i = sum_{j < keys} p_ij v_j (p_ij = 0 past the diagonal).
          GemmOneThread(head.QRow(out, i0), head.q_stride, StridedMatrix{p + i0 * K, K, 1},
                        head.KV(v), rows, d, keys, /*accumulate=*/false);
          if (clipped) {  // C_i = sum_j UnclippedWeight(p_ij) v_j (UnclippedWeight(0) = 0)
            for (int64_t r = 0; r < rows; ++r) {
              for (int64_t j = 0; j < keys; ++j) {
                unclipped[r * K + j] = UnclippedWeight(spec, p[(i0 + r) * K + j]);
              }
            }
            GemmOneThread(head.QRow(unclipped_values, i0), head.q_stride,
                          StridedMatrix{unclipped.data(), K, 1}, head.KV(v), rows, d, keys,
                          /*accumulate=*/false);
          }
        }
      }
    }
  }
}

void CpuBackend::AttentionBackward(const Tensor& dq, const Tensor& dk, const Tensor& dv,
                                   const Tensor& dsink_logit, const Tensor& dout, const Tensor& q,
                                   const Tensor& k, const Tensor& v, const Tensor& sink_logit,
                                   const Tensor& /*out*/, const Tensor& unclipped_values,
                                   const Tensor& probs, const Tensor& lse,
                                   const AttentionSpec& spec, GradWrite dqkv_write) {
  const AttentionDims dims =
      CheckAttentionShapes(dout, probs, lse, unclipped_values, q, k, v, sink_logit, spec);
  CheckSameShape(dq, q, "AttentionBackward dq");
  CheckSameShape(dk, k, "AttentionBackward dk");
  CheckSameShape(dv, v, "AttentionBackward dv");
  // The loops below accumulate; kAssign starts them from 0 (every element is then written).
  if (dqkv_write == GradWrite::kAssign) {
    for (const Tensor* grad : {&dq, &dk, &dv}) Fill(*grad, 0.0f);
  }
  const int64_t S = dims.seq, K = dims.keys, H = dims.heads, Hkv = dims.kv_heads, d = dims.d;
  const int64_t bias = dims.bias_keys(), group = H / Hkv;
  const bool needs_scores = NormalizerNeedsScores(spec.normalizer);
  const bool sink_grad = spec.normalizer == AttentionNormalizer::kSinkLogit;
  const bool clipped = spec.normalizer == AttentionNormalizer::kClippedSoftmax;
  // dL/db_h of each (b, h), summed over b in order after the parallel loop.
  std::vector<float> dsink(sink_grad ? dims.batch * H : 0, 0.0f);
  const bool parallel = dims.batch * H * S * K * d > kParallelWork;
#pragma omp parallel if (parallel)
  {
    std::vector<float> ds(kQueryRows * K);  // dL/dp, then dL/ds, of one step's query rows
    std::vector<float> scores(needs_scores ? kQueryRows * K : 0);  // s of the same rows
#pragma omp for collapse(2) schedule(static)
    for (int64_t b = 0; b < dims.batch; ++b) {
      for (int64_t g = 0; g < Hkv; ++g) {
        for (int64_t h = g * group; h < (g + 1) * group; ++h) {
          const HeadViews head = ViewsOf(dims, b, h);
          const float sink = SinkLogitOf(sink_logit, spec, h);
          const float* p = probs.f32() + (b * H + h) * S * K;
          const float* row_lse = lse.f32() + (b * H + h) * S;
          float dsink_bh = 0.0f;
          for (int64_t i0 = 0; i0 < S; i0 += kQueryRows) {
            const int64_t i1 = std::min(S, i0 + kQueryRows), rows = i1 - i0, keys = bias + i1;
            const StridedMatrix p_rows{p + i0 * K, K, 1};  // [rows, keys]
            const StridedMatrix ds_rows{ds.data(), K, 1};  // [rows, keys]
            // dv_j += sum_i p_ij dout_i   (dv[0, keys) += p_rows^T dout[i0, i1)).
            GemmOneThread(head.KVRow(dv, 0), head.kv_stride, p_rows.Transposed(),
                          head.Q(dout).FromRow(i0), keys, d, rows, /*accumulate=*/true);
            // dp_ij = dout_i . v_j, then ds = scale * NormalizeBackward(p, dp).
            GemmOneThread(ds.data(), K, head.Q(dout).FromRow(i0), head.KV(v).Transposed(), rows,
                          keys, d, /*accumulate=*/false);
            if (needs_scores) {
              GemmOneThread(scores.data(), K, head.Q(q).FromRow(i0), head.KV(k).Transposed(), rows,
                            keys, d, /*accumulate=*/false);
            }
            for (int64_t i = i0; i < i1; ++i) {
              float* row = ds.data() + (i - i0) * K;
              const int64_t seen = bias + i + 1;
              float* s = nullptr;
              if (needs_scores) {
                s = scores.data() + (i - i0) * K;
                for (int64_t j = 0; j < seen; ++j) s[j] *= spec.scale;
              }
              // Clipped softmax's row sum sum_j sm_ij dsm_ij = dout_i . C_i (backend.h).
              const float clipped_row_dot =
                  clipped ? Dot(head.QRow(dout, i), head.QRow(unclipped_values, i), d) : 0.0f;
              dsink_bh += NormalizeRowBackward(spec, sink, p + i * K, s, row_lse[i],
                                               clipped_row_dot, row, seen, row);
              for (int64_t j = 0; j < seen; ++j) row[j] *= spec.scale;
              std::fill(row + seen, row + keys, 0.0f);
            }
            // dq_i += sum_j ds_ij k_j;  dk_j += sum_i ds_ij q_i.
            GemmOneThread(head.QRow(dq, i0), head.q_stride, ds_rows, head.KV(k), rows, d, keys,
                          /*accumulate=*/true);
            GemmOneThread(head.KVRow(dk, 0), head.kv_stride, ds_rows.Transposed(),
                          head.Q(q).FromRow(i0), keys, d, rows, /*accumulate=*/true);
          }
          if (sink_grad) dsink[b * H + h] = dsink_bh;
        }
      }
    }
  }
  if (sink_grad && !dsink_logit.empty()) {
    CheckCpuF32(dsink_logit, "AttentionBackward dsink_logit");
    SL_CHECK(dsink_logit.numel() == H);
    for (int64_t b = 0; b < dims.batch; ++b) {
      for (int64_t h = 0; h < H; ++h) dsink_logit.f32()[h] += dsink[b * H + h];
    }
  }
}

void CpuBackend::AttentionRowStats(const Tensor& row_stats, const Tensor& probs, const Tensor& q,
                                   const Tensor& k, const Tensor& /*lse*/,
                                   const Tensor& /*sink_logit*/, const AttentionSpec& /*spec*/,
                                   int64_t prefix_tokens) {
  for (const Tensor* t : {&row_stats, &probs, &q, &k}) CheckCpuF32(*t, "AttentionRowStats");
  SL_CHECK_MSG(q.rank() == 4 && k.rank() == 4,
               absl::StrCat("AttentionRowStats expects q [B, S, H, d], got ", q.ShapeString()));
  const int64_t B = q.dim(0), S = q.dim(1), H = q.dim(2), K = k.dim(1);
  const int64_t bias = K - S, R = kAttentionRowStatFields;
  const std::string shapes = absl::StrCat(
      "AttentionRowStats: q ", q.ShapeString(), " k ", k.ShapeString(), " probs ",
      probs.ShapeString(), " row_stats ", row_stats.ShapeString(), " prefix ", prefix_tokens);
  // The CPU reference reads the weights its forward stored (probs are never empty here).
  SL_CHECK_MSG(probs.numel() == B * H * S * K && row_stats.numel() == B * H * S * R && bias >= 0 &&
                   prefix_tokens >= 0 && prefix_tokens < S,
               shapes);
  const int64_t first_data_key = bias + prefix_tokens;
#pragma omp parallel for schedule(static) if (B * H * S * K > kParallelWork)
  for (int64_t row = 0; row < B * H * S; ++row) {
    const int64_t i = row % S, seen = bias + i + 1;  // keys query i sees
    const float* p = probs.f32() + row * K;
    double bias_mass = 0, prefix = 0, total = 0, entropy = 0;
    for (int64_t j = 0; j < bias; ++j) bias_mass += p[j];
    for (int64_t j = bias; j < std::min(first_data_key, seen); ++j) prefix += p[j];
    for (int64_t j = 0; j < seen; ++j) {
      total += p[j];
      if (p[j] > 0) entropy -= p[j] * std::log(static_cast<double>(p[j]));  // 0 ln 0 = 0
    }
    float* out = row_stats.f32() + row * R;
    out[kRowDataTokenZero] = first_data_key < seen ? p[first_data_key] : 0.0f;
    out[kRowBiasKey] = static_cast<float>(bias_mass);
    out[kRowPrefixMass] = static_cast<float>(prefix);
    out[kRowTotalMass] = static_cast<float>(total);
    out[kRowEntropy] = static_cast<float>(entropy);
  }
}

}  // namespace sinklab

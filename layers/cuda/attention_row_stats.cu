// Per-query-row attention statistics row_stats [B, H, S, kAttentionRowStatFields] f32
// (layers/backend.h, AttentionRowStat) for statistics steps, without a [S, K] matrix: each
// weight p_ij is recomputed from q, k and the stored lse exactly as attention_probs.cu does
// (WeightFromLse of attention_normalizer.cuh) and reduced at once.
//
// Tiling: one block of 128 threads per (b * h, 32-query tile), looping over the 32-key tiles
// its rows see; the quad of a row sums its lanes' columns, then two shuffles (QuadSum) give
// the row's fields. Sums are in fp32 over at most K keys per row.
#include "layers/cuda/attention_common.cuh"
#include "layers/cuda/cuda_backend.h"

namespace sinklab {
namespace cuda {
namespace {

constexpr int kFields = kAttentionRowStatFields;

template <typename T>
__global__ void __launch_bounds__(kGenericThreads)
    RowStatsKernel(AttentionParams p, int prefix_tokens, float* row_stats, const float* lse,
                   const T* q, const T* k) {
  const AttentionDims& dims = p.dims;
  const int d = dims.d, ld = TileLd(d), bias = dims.bias_keys();
  const int b = blockIdx.x / dims.heads, h = blockIdx.x % dims.heads;
  const int i0 = blockIdx.y * kGenericRows;
  const int quad = threadIdx.x & 3, row = i0 + threadIdx.x / 4;
  const bool valid = row < dims.seq;  // rows past S compute on zeros and write nothing
  const int first_data_key = bias + prefix_tokens;

  extern __shared__ float smem[];
  float* q_tile = smem;
  float* k_tile = q_tile + kGenericRows * ld;
  LoadTile(q_tile, ld, q, QueryHead(dims, b, h), i0, dims.seq, d);
  const float row_lse = valid ? lse[RowIndex(dims, b, h, row)] : 0.0f;
  float acc[kFields];
#pragma unroll
  for (int f = 0; f < kFields; ++f) acc[f] = 0.0f;
  // Keys the tile's last row sees: j < bias + i0 + kGenericRows (and < K).
  const int key_end = min(dims.keys, bias + i0 + kGenericRows);
  for (int j0 = 0; j0 < key_end; j0 += kGenericRows) {
    __syncthreads();  // the previous k tile is consumed (the first time: q_tile is loaded)
    LoadTile(k_tile, ld, k, KeyHead(dims, b, h / dims.group()), j0, dims.keys, d);
    __syncthreads();
    float s[kColsPerLane];
    RowDots(q_tile + (threadIdx.x / 4) * ld, k_tile + quad * ld, ld, d, s);
#pragma unroll
    for (int m = 0; m < kColsPerLane; ++m) {
      const int j = j0 + quad + 4 * m;
      if (!valid || j > row + bias) continue;  // not seen (row + bias < K, so j < K)
      const float w = WeightFromLse(p.norm, p.norm.scale * s[m], row_lse);
      if (j == first_data_key) acc[kRowDataTokenZero] += w;
      if (j < bias) {
        acc[kRowBiasKey] += w;
      } else if (j < first_data_key) {
        acc[kRowPrefixMass] += w;
      }
      acc[kRowTotalMass] += w;
      if (w > 0.0f) acc[kRowEntropy] -= w * logf(w);  // 0 ln 0 = 0
    }
  }
  // Every lane of every warp reaches the shuffles (no early return above).
#pragma unroll
  for (int f = 0; f < kFields; ++f) acc[f] = QuadSum(acc[f]);
  if (valid && quad == 0) {
    float* out = row_stats + RowIndex(dims, b, h, row) * kFields;
#pragma unroll
    for (int f = 0; f < kFields; ++f) out[f] = acc[f];
  }
}

}  // namespace
}  // namespace cuda

void CudaBackend::AttentionRowStats(const Tensor& row_stats, const Tensor& /*probs*/,
                                    const Tensor& q, const Tensor& k, const Tensor& lse,
                                    const Tensor& sink_logit, const AttentionSpec& spec,
                                    int64_t prefix_tokens) {
  // The shape checks of the forward, with q standing in for out and k for v (same shapes).
  const cuda::AttentionDims dims =
      cuda::CheckAttentionShapes("AttentionRowStats", q, lse, q, k, k, sink_logit, spec);
  cuda::CheckCuda(row_stats, "AttentionRowStats row_stats");
  SL_CHECK_MSG(row_stats.dtype() == DType::kF32 &&
                   row_stats.numel() == dims.rows() * cuda::kFields && prefix_tokens >= 0 &&
                   prefix_tokens < dims.seq,
               absl::StrCat("AttentionRowStats row_stats ", row_stats.ShapeString(),
                            " for B=", dims.batch, " H=", dims.heads, " S=", dims.seq, " fields ",
                            cuda::kFields, ", prefix tokens ", prefix_tokens));
  SL_CHECK_MSG(dims.d <= cuda::kGenericMaxD, "AttentionRowStats: head dim above 128");
  if (row_stats.numel() == 0) return;
  const cuda::AttentionParams params = cuda::ParamsOf(dims, spec, sink_logit);
  cuda::DispatchFloat(q.dtype(), [&](auto t) {
    using T = decltype(t);
    auto kernel = cuda::RowStatsKernel<T>;
    const size_t smem = 2 * cuda::TileBytes(dims.d);
    cuda::AllowSharedMemory(kernel, smem);
    const dim3 grid(dims.batch * dims.heads,
                    (dims.seq + cuda::kGenericRows - 1) / cuda::kGenericRows);
    kernel<<<grid, cuda::kGenericThreads, smem, stream_>>>(
        params, static_cast<int>(prefix_tokens), row_stats.f32(), lse.f32(),
        cuda::Ptr<T>(q), cuda::Ptr<T>(k));
    SL_CUDA_LAUNCH_CHECK();
  });
}

}  // namespace sinklab

// The attention weights probs [B, H, S, K] f32 for statistics steps (DESIGN.md section 6),
// recomputed after the fused forward from q, k and the stored lse: p_ij = the normalizer's
// weight of s_ij (WeightFromLse), 0 for keys query i does not see. Every entry is written.
//
// Tiling: one block of 128 threads per (32-query tile, 32-key tile, b * h); both operand
// tiles in shared memory, each quad computes one query row of 32 scores.
#include "layers/cuda/attention_common.cuh"

namespace sinklab {
namespace cuda {
namespace {

template <typename T>
__global__ void __launch_bounds__(kGenericThreads)
    ProbsKernel(AttentionParams p, float* probs, const float* lse, const T* q, const T* k) {
  const AttentionDims& dims = p.dims;
  const int d = dims.d, ld = TileLd(d), bias = dims.bias_keys();
  const int b = blockIdx.z / dims.heads, h = blockIdx.z % dims.heads;
  const int i0 = blockIdx.x * kGenericRows, j0 = blockIdx.y * kGenericRows;
  const int quad = threadIdx.x & 3, row = i0 + threadIdx.x / 4;

  extern __shared__ float smem[];
  float* q_tile = smem;
  float* k_tile = q_tile + kGenericRows * ld;
  LoadTile(q_tile, ld, q, QueryHead(dims, b, h), i0, dims.seq, d);
  LoadTile(k_tile, ld, k, KeyHead(dims, b, h / dims.group()), j0, dims.keys, d);
  __syncthreads();
  if (row >= dims.seq) return;
  float s[kColsPerLane];
  RowDots(q_tile + (threadIdx.x / 4) * ld, k_tile + quad * ld, ld, d, s);
  const float row_lse = lse[RowIndex(dims, b, h, row)];
  float* probs_row = probs + RowIndex(dims, b, h, row) * dims.keys;
#pragma unroll
  for (int m = 0; m < kColsPerLane; ++m) {
    const int j = j0 + quad + 4 * m;
    if (j >= dims.keys) continue;
    probs_row[j] = j <= row + bias ? WeightFromLse(p.norm, p.norm.scale * s[m], row_lse) : 0.0f;
  }
}

}  // namespace

void LaunchAttentionProbs(cudaStream_t stream, const AttentionParams& p, const Tensor& probs,
                          const Tensor& lse, const Tensor& q, const Tensor& k) {
  const AttentionDims& dims = p.dims;
  CheckCuda(probs, "AttentionForward probs");
  SL_CHECK_MSG(probs.dtype() == DType::kF32 && probs.numel() == dims.rows() * dims.keys,
               absl::StrCat("AttentionForward probs ", probs.ShapeString(), " for B=", dims.batch,
                            " H=", dims.heads, " S=", dims.seq, " K=", dims.keys));
  SL_CHECK_MSG(dims.d <= kGenericMaxD, "AttentionForward probs: head dim above 128");
  DispatchFloat(q.dtype(), [&](auto t) {
    using T = decltype(t);
    auto kernel = ProbsKernel<T>;
    const size_t smem = 2 * TileBytes(dims.d);
    AllowSharedMemory(kernel, smem);
    const dim3 grid((dims.seq + kGenericRows - 1) / kGenericRows,
                    (dims.keys + kGenericRows - 1) / kGenericRows, dims.batch * dims.heads);
    kernel<<<grid, kGenericThreads, smem, stream>>>(p, probs.f32(), lse.f32(), Ptr<T>(q),
                                                    Ptr<T>(k));
    SL_CUDA_LAUNCH_CHECK();
  });
}

}  // namespace cuda
}  // namespace sinklab

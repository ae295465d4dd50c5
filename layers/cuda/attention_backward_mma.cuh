// Shared pieces of the tensor-core attention backward (attention_backward_dq_mma.cu,
// attention_backward_dkv_mma.cu): FlashAttention-2's backward (Dao 2023) made deterministic by
// splitting it in two kernels with no atomics; the math and the generic path are
// attention_backward.cu's. bf16, head dims 64 and 128, every normalizer.
//
// Clipped softmax: its row sum Dc_i needs every key of row i, so both kernels first sum it
// over the row's keys (ClippedRowDots, on tensor cores): once per query tile in MmaDqKernel,
// but once per (key tile, query tile) in MmaDkvKernel, as there is no scratch memory to pass it
// on. That pass costs about (keys seen by the query tile) / 128 times the main work of a (key
// tile, query tile) pair: clipped softmax's backward is several times slower than the other
// normalizers' at long sequences.
#ifndef SINKLAB_LAYERS_CUDA_ATTENTION_BACKWARD_MMA_CUH_
#define SINKLAB_LAYERS_CUDA_ATTENTION_BACKWARD_MMA_CUH_

#include "layers/cuda/attention_mma.cuh"

namespace sinklab {
namespace cuda {

constexpr int kBwdRows = 64;      // a block's own queries (dq) or keys (dk, dv): 16 per warp
constexpr int kBwdThreads = 128;  // 4 warps (MmaDkvKernel: 2 groups of them)

template <int kD>
constexpr int kDkvQueryTile = kD == 64 ? 64 : 32;

// Adds scale * acc (this thread's C fragments of a [16, kD] row block: n-tile dt holds dims
// [8 dt, 8 dt + 8)) to rows row0 + g and row0 + g + 8 of x (rows at or past `limit` skipped).
template <int kD>
__device__ __forceinline__ void AccumulateFragments(bf16* x, HeadView view, int row0, int limit,
                                                    const float (&acc)[kD / 8][4], float scale) {
  const int g = (threadIdx.x & 31) / 4, t = threadIdx.x & 3;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int row = row0 + g + 8 * r;
    if (row >= limit) continue;
    __nv_bfloat162* pairs =
        reinterpret_cast<__nv_bfloat162*>(x + view.offset + row * view.stride + 2 * t);
#pragma unroll
    for (int dt = 0; dt < kD / 8; ++dt) {
      const float2 old = __bfloat1622float2(pairs[4 * dt]);
      pairs[4 * dt] =
          __floats2bfloat162_rn(old.x + scale * acc[dt][2 * r], old.y + scale * acc[dt][2 * r + 1]);
    }
  }
}

// Partial dout_i . out_i over the dim pairs (2 part + 2 parts m, +1) of row `row` (0 past
// the sequence); the caller sums the `parts` partials.
template <int kD>
__device__ __forceinline__ float PartialOutputDot(const bf16* dout, const bf16* out, HeadView view,
                                                  int row, int seq, int part, int parts) {
  if (row >= seq) return 0.0f;
  const int64_t at = view.offset + row * view.stride;
  const __nv_bfloat162* dout2 = reinterpret_cast<const __nv_bfloat162*>(dout + at);
  const __nv_bfloat162* out2 = reinterpret_cast<const __nv_bfloat162*>(out + at);
  float acc = 0.0f;
  for (int pair = part; pair < kD / 2; pair += parts) {
    const float2 a = __bfloat1622float2(dout2[pair]), b = __bfloat1622float2(out2[pair]);
    acc = fmaf(a.x, b.x, fmaf(a.y, b.y, acc));
  }
  return acc;
}

// c[2 np], c[2 np + 1] += A(rows [16 block, +16) of a_tile) B(rows [16 np, +16) of b_tile)^T
// over the kD columns: a [16, n] product of two row-major tiles (S = Q K^T and friends).
template <int kD, int kNTiles>
__device__ __forceinline__ void RowBlockTimesRowsT(float (&c)[kNTiles][4], const bf16* a_tile,
                                                   const bf16* b_tile, int block) {
  const SharedTile<kD> a_shared = TileAt<kD>(a_tile), b_shared = TileAt<kD>(b_tile);
#pragma unroll
  for (int ks = 0; ks < kD / 16; ++ks) {
    uint32_t a[4];
    a_shared.A(a, 16 * block, 16 * ks);
#pragma unroll
    for (int np = 0; np < kNTiles / 2; ++np) {
      uint32_t bb[4];
      b_shared.BFromRows(bb, 16 * np, 16 * ks);
      Mma(c[2 * np], a, bb[0], bb[1]);
      Mma(c[2 * np + 1], a, bb[2], bb[3]);
    }
  }
}

// acc [16, kD] += W [16, 16 kChunks] (C fragments, rounded to bf16) times rows [0, 16 kChunks)
// of b_tile ([rows][kD]).
template <int kD, int kNTiles>
__device__ __forceinline__ void FragmentsTimesRows(float (&acc)[kD / 8][4],
                                                   const float (&w)[kNTiles][4],
                                                   const bf16* b_tile) {
  const SharedTile<kD> b_shared = TileAt<kD>(b_tile);
#pragma unroll
  for (int kk = 0; kk < kNTiles / 2; ++kk) {
    uint32_t a[4];
    AFromC(a, w[2 * kk], w[2 * kk + 1]);
#pragma unroll
    for (int dp = 0; dp < kD / 16; ++dp) {
      uint32_t bb[4];
      b_shared.BFromCols(bb, 16 * kk, 16 * dp);
      Mma(acc[2 * dp], a, bb[0], bb[1]);
      Mma(acc[2 * dp + 1], a, bb[2], bb[3]);
    }
  }
}

// Clipped softmax's row sums Dc_i = sum_j ClippedRowTerm(s_ij, lse_i, dp_ij) over every key
// a row sees, streaming 64-key tiles [0, key_end) through k_buf and v_buf (key_end the same in
// every thread: the end of the keys of the block's last row). An `active` warp sums the 16
// rows [16 block, 16 block + 16) of its q_tile and dout_tile, query rows row0 + 16 block + r;
// this thread's rows g and g + 8 have lse row_lse[0..1] and get their quad-reduced sums in
// row_dot. Starts and ends with __syncthreads() and leaves no cp.async group pending.
template <int kD, int kBlockThreads>
__device__ void ClippedRowDots(const NormalizerArgs& n, const AttentionDims& dims, bool active,
                               const bf16* q_tile, const bf16* dout_tile, int block, int row0,
                               int key_end, bf16* k_buf, bf16* v_buf, const bf16* k, const bf16* v,
                               HeadView kv_head, const float (&row_lse)[2], float (&row_dot)[2]) {
  constexpr int kKeyTiles = kBwdRows / 8;
  const int lane = threadIdx.x & 31, g = lane / 4, t = lane & 3;
  const int bias = dims.bias_keys(), warp_row0 = row0 + 16 * block;
  float sum[2] = {0.0f, 0.0f};
  for (int j0 = 0; j0 < key_end; j0 += kBwdRows) {
    __syncthreads();  // the buffers are free
    LoadTileAsync<kBwdRows, kD, kBlockThreads>(k_buf, k, kv_head, j0, dims.keys);
    LoadTileAsync<kBwdRows, kD, kBlockThreads>(v_buf, v, kv_head, j0, dims.keys);
    CopyAsyncCommit();
    CopyAsyncWait<0>();
    __syncthreads();
    if (active && j0 <= warp_row0 + 15 + bias) {
      float s[kKeyTiles][4] = {}, dp[kKeyTiles][4] = {};
      RowBlockTimesRowsT<kD>(s, q_tile, k_buf, block);
      RowBlockTimesRowsT<kD>(dp, dout_tile, v_buf, block);
#pragma unroll
      for (int nt = 0; nt < kKeyTiles; ++nt) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int r = e / 2, row = warp_row0 + g + 8 * r, key = j0 + 8 * nt + 2 * t + (e & 1);
          if (key <= row + bias && key < dims.keys) {
            sum[r] += ClippedRowTerm(n, n.scale * s[nt][e], row_lse[r], dp[nt][e]);
          }
        }
      }
    }
  }
  __syncthreads();
  row_dot[0] = QuadSum(sum[0]);
  row_dot[1] = QuadSum(sum[1]);
}

}  // namespace cuda
}  // namespace sinklab

#endif  // SINKLAB_LAYERS_CUDA_ATTENTION_BACKWARD_MMA_CUH_

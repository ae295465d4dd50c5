// Shared pieces of the tensor-core attention backward (attention_backward_dq_mma.cu,
// attention_backward_dkv_mma.cu): FlashAttention-2's backward (Dao 2023) made deterministic by
// splitting it in two kernels with no atomics; the math and the generic path are
// attention_backward.cu's. bf16, head dims 64 and 128, every normalizer. The dq kernel
// computes each row's sum from two rows, D_i = dout_i . out_i, or for clipped softmax
// dout_i . C_i with C its forward's fp32 unclipped_values (no extra pass over the keys), and
// stores it for the dk/dv kernel, which reads it as it reads the lse.
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
// [8 dt, 8 dt + 8)) to rows row0 + g and row0 + g + 8 of x (rows at or past `limit` skipped),
// or with `assign` writes it over them (x is not read).
template <int kD>
__device__ __forceinline__ void AccumulateFragments(bf16* x, HeadView view, int row0, int limit,
                                                    const float (&acc)[kD / 8][4], float scale,
                                                    bool assign) {
  const int g = (threadIdx.x & 31) / 4, t = threadIdx.x & 3;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int row = row0 + g + 8 * r;
    if (row >= limit) continue;
    __nv_bfloat162* pairs =
        reinterpret_cast<__nv_bfloat162*>(x + view.offset + row * view.stride + 2 * t);
#pragma unroll
    for (int dt = 0; dt < kD / 8; ++dt) {
      const float2 old = assign ? float2{0.0f, 0.0f} : __bfloat1622float2(pairs[4 * dt]);
      pairs[4 * dt] =
          __floats2bfloat162_rn(old.x + scale * acc[dt][2 * r], old.y + scale * acc[dt][2 * r + 1]);
    }
  }
}

// Elements (at, at + 1) of a bf16 or fp32 tensor as floats.
__device__ __forceinline__ float2 PairAt(const bf16* x, int64_t at) {
  return __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(x + at));
}
__device__ __forceinline__ float2 PairAt(const float* x, int64_t at) {
  return make_float2(x[at], x[at + 1]);
}

// Partial dout_i . x_i over the dim pairs (2 part + 2 parts m, +1) of row `row` (0 past the
// sequence), x = out (bf16) or clipped softmax's unclipped_values (fp32), both laid out as
// dout; the caller sums the `parts` partials.
template <int kD, typename T>
__device__ __forceinline__ float PartialRowDot(const bf16* dout, const T* x, HeadView view, int row,
                                               int seq, int part, int parts) {
  if (row >= seq) return 0.0f;
  const int64_t at = view.offset + row * view.stride;
  float acc = 0.0f;
  for (int pair = part; pair < kD / 2; pair += parts) {
    const float2 a = PairAt(dout, at + 2 * pair), b = PairAt(x, at + 2 * pair);
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

}  // namespace cuda
}  // namespace sinklab

#endif  // SINKLAB_LAYERS_CUDA_ATTENTION_BACKWARD_MMA_CUH_

// Tensor-core building blocks of the fast attention kernels (sm_80+; no Hopper-only
// instructions): bf16 mma.sync m16n8k16 with fp32 accumulation, ldmatrix fragment loads,
// cp.async tile copies and an XOR-swizzled shared-memory tile layout.
//
// Fragments of mma.sync.m16n8k16 (PTX ISA, "Matrix fragments for mma.m16n8k16"), lane = 4 g + t:
//   A 16x16 (row-major): a0 (row g, cols 2t, 2t+1), a1 (row g+8, same), a2 (row g, cols 2t+8,
//     2t+9), a3 (row g+8, same);  B 16x8 (k x n): b0 (k 2t, 2t+1; n g), b1 (k 2t+8, 2t+9; n g);
//   C 16x8: c0, c1 (row g, cols 2t, 2t+1), c2, c3 (row g+8, same).
// So a row of C lives in the quad of lanes 4g..4g+3 (QuadMax / QuadSum reduce it), and two
// adjacent C tiles of one row block, rounded to bf16, are exactly an A fragment (the
// probabilities feed the next product without leaving registers; Dao 2023, FlashAttention-2).
//
// Tiles are [rows][kD] bf16 in shared memory with the 16-byte chunk c of row r stored at
// chunk position c ^ (r % 8): the 8 rows an ldmatrix reads at one logical chunk then fall in 8
// different bank groups (no conflicts), for row-wise and transposed reads alike.
#ifndef SINKLAB_LAYERS_CUDA_ATTENTION_MMA_CUH_
#define SINKLAB_LAYERS_CUDA_ATTENTION_MMA_CUH_

#include <cuda_bf16.h>

#include <cstdint>

#include "layers/cuda/attention_common.cuh"

namespace sinklab {
namespace cuda {

__device__ __forceinline__ uint32_t SharedAddress(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// 16 bytes global -> shared without staging in registers; zero-filled when !valid (src is
// then not read but must be a valid address).
__device__ __forceinline__ void CopyAsync16(void* dst, const void* src, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(SharedAddress(dst)),
               "l"(src), "r"(valid ? 16 : 0));
}
// 4 bytes (an fp32), zero-filled when !valid.
__device__ __forceinline__ void CopyAsync4(void* dst, const void* src, bool valid) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(SharedAddress(dst)), "l"(src),
               "r"(valid ? 4 : 0));
}
__device__ __forceinline__ void CopyAsyncCommit() { asm volatile("cp.async.commit_group;\n" ::); }
// Waits until at most `kPending` of this thread's committed groups are still in flight.
template <int kPending>
__device__ __forceinline__ void CopyAsyncWait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending) : "memory");
}

// Element offset of (row, col) in a swizzled [rows][kD] tile (col a multiple of 8 for chunks).
template <int kD>
__device__ __forceinline__ int SwizzledOffset(int row, int col) {
  return row * kD + (((col >> 3) ^ (row & 7)) << 3) + (col & 7);
}

// Stages rows [row0, row0 + kRows) of one head of a [B, T, heads, kD] bf16 tensor into a
// swizzled tile with cp.async (the caller commits and waits); rows at or past `limit` are
// zero. kThreads threads take part (thread = 0 .. kThreads - 1: by default the block's), each
// copying one fixed chunk column of every (kThreads / (kD / 8))-th row, so its swizzle is
// computed once.
template <int kRows, int kD, int kThreads>
__device__ __forceinline__ void LoadTileAsync(bf16* tile, const bf16* x, HeadView view, int row0,
                                              int limit, int thread = threadIdx.x) {
  constexpr int kChunks = kD / 8, kRowStep = kThreads / kChunks;
  static_assert(kThreads % kChunks == 0 && kRows % kRowStep == 0 && kRowStep % 8 == 0,
                "tile shape");
  const int c = thread % kChunks, r0 = thread / kChunks;
  bf16* dst = tile + SwizzledOffset<kD>(r0, c * 8);  // (r0 + k kRowStep) % 8 == r0 % 8
  const bf16* src = x + view.offset + c * 8;
#pragma unroll
  for (int r = r0; r < kRows; r += kRowStep) {
    const int row = row0 + r;
    const bool valid = row < limit;
    CopyAsync16(dst + (r - r0) * kD, src + (valid ? row * view.stride : 0), valid);
  }
}

// Four 8x8 bf16 matrices at the shared address `at` (this lane's row): lane l gives the
// address of row l % 8 of matrix l / 8 and receives row l / 4, elements 2 (l % 4) and
// 2 (l % 4) + 1 of each (transposed: of each one's transpose).
__device__ __forceinline__ void LoadMatrices(uint32_t (&r)[4], uint32_t at) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(at));
}
__device__ __forceinline__ void LoadMatricesTransposed(uint32_t (&r)[4], uint32_t at) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(at));
}

// This lane's part of an ldmatrix x4 address in a swizzled [rows][kD] tile, computed once per
// kernel: the byte offset of its row within a 16-row block, and its chunk bit XOR the row's
// swizzle. For a block at (row0, col0) with row0 % 8 == 0 and col0 % 16 == 0 the row's
// swizzle is unchanged and the chunk (col0 / 8 + bit) ^ swizzle = (col0 / 8) ^ chunk_xor.
struct LaneAddress {
  uint32_t row_bytes;
  int chunk_xor;
};
// Matrices ordered rows +0/+8, then cols +0/+8: an A fragment a0..a3 of a [16][16] block, or
// the B fragments (b0, b1 of n-tile 0, then of n-tile 1) of a [k][n] tile read transposed.
template <int kD>
__device__ __forceinline__ LaneAddress RowsFirstLane() {
  const int lane = threadIdx.x & 31, row = (lane & 7) + ((lane >> 3) & 1) * 8;
  return {static_cast<uint32_t>(row * kD * sizeof(bf16)), (lane >> 4) ^ (row & 7)};
}
// Matrices ordered cols +0/+8, then rows +0/+8: the B fragments of two n-tiles of an [n][k]
// tile (b0, b1 of rows [0, 8), then of rows [8, 16)).
template <int kD>
__device__ __forceinline__ LaneAddress ColsFirstLane() {
  const int lane = threadIdx.x & 31, row = (lane & 7) + (lane >> 4) * 8;
  return {static_cast<uint32_t>(row * kD * sizeof(bf16)), ((lane >> 3) & 1) ^ (row & 7)};
}
template <int kD>
__device__ __forceinline__ uint32_t FragmentAt(uint32_t tile, LaneAddress lane, int row0,
                                               int col0) {
  return tile + lane.row_bytes + row0 * kD * sizeof(bf16) + (((col0 >> 3) ^ lane.chunk_xor) << 4);
}

// A swizzled [rows][kD] tile at a shared address, read as mma fragments.
template <int kD>
struct SharedTile {
  uint32_t at;
  // The A fragment of rows [row0, row0 + 16), cols [col0, col0 + 16).
  __device__ __forceinline__ void A(uint32_t (&a)[4], int row0, int col0) const {
    LoadMatrices(a, FragmentAt<kD>(at, RowsFirstLane<kD>(), row0, col0));
  }
  // B = tile^T (the tile is [n][k], e.g. K in Q K^T): b[0], b[1] for n-tile rows
  // [n0, n0 + 8) and b[2], b[3] for [n0 + 8, n0 + 16), k cols [k0, k0 + 16).
  __device__ __forceinline__ void BFromRows(uint32_t (&b)[4], int n0, int k0) const {
    LoadMatrices(b, FragmentAt<kD>(at, ColsFirstLane<kD>(), n0, k0));
  }
  // B = tile (the tile is [k][n], e.g. V in P V): k rows [k0, k0 + 16); b[0], b[1] for n cols
  // [n0, n0 + 8) and b[2], b[3] for [n0 + 8, n0 + 16).
  __device__ __forceinline__ void BFromCols(uint32_t (&b)[4], int k0, int n0) const {
    LoadMatricesTransposed(b, FragmentAt<kD>(at, RowsFirstLane<kD>(), k0, n0));
  }
};
template <int kD>
__device__ __forceinline__ SharedTile<kD> TileAt(const bf16* p) {
  return {SharedAddress(p)};
}

// c += a b (m16n8k16, bf16 in, fp32 accumulate).
__device__ __forceinline__ void Mma(float (&c)[4], const uint32_t (&a)[4], uint32_t b0,
                                    uint32_t b1) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, "
      "{%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ uint32_t PackBf16(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&v);
}

// The A fragment (16 rows x 16 cols) made of two C tiles of one row block: c_lo holds the
// cols [0, 8), c_hi the cols [8, 16).
__device__ __forceinline__ void AFromC(uint32_t (&a)[4], const float (&c_lo)[4],
                                       const float (&c_hi)[4]) {
  a[0] = PackBf16(c_lo[0], c_lo[1]);
  a[1] = PackBf16(c_lo[2], c_lo[3]);
  a[2] = PackBf16(c_hi[0], c_hi[1]);
  a[3] = PackBf16(c_hi[2], c_hi[3]);
}

// Calls f(std::integral_constant<int, d>{}, std::integral_constant<AttentionNormalizer, kind>{})
// for the dims' d (64 or 128) and the spec's normalizer: the tensor-core kernels are
// instantiated per normalizer so that its switches fold away.
template <typename F>
void DispatchMmaKernel(const AttentionParams& p, F&& f) {
  const auto with_dim = [&](auto kind) {
    if (p.dims.d == 64) {
      f(std::integral_constant<int, 64>{}, kind);
    } else {
      SL_CHECK_MSG(p.dims.d == 128, "tensor-core attention: head dim 64 or 128");
      f(std::integral_constant<int, 128>{}, kind);
    }
  };
  using N = AttentionNormalizer;
  switch (p.norm.kind) {
    case N::kSoftmax:
      return with_dim(std::integral_constant<N, N::kSoftmax>{});
    case N::kSoftmax1:
      return with_dim(std::integral_constant<N, N::kSoftmax1>{});
    case N::kSinkLogit:
      return with_dim(std::integral_constant<N, N::kSinkLogit>{});
    case N::kSoftpick:
      return with_dim(std::integral_constant<N, N::kSoftpick>{});
    case N::kSigmoid:
      return with_dim(std::integral_constant<N, N::kSigmoid>{});
    case N::kClippedSoftmax:
      return with_dim(std::integral_constant<N, N::kClippedSoftmax>{});
  }
  SL_CHECK_MSG(false, "unknown attention normalizer");
}

// A query-tile kernel's block: batch b, query head h, first query i0. The grid is (b * h,
// query tiles) and blocks start in index order, so every head's last query tile (the longest
// under the causal mask) starts first, then every head's second-last, and so on: the short
// tiles come last and fill the SMs as the grid drains (longest first, across heads).
struct QueryBlock {
  int b, h, i0;
};
template <int kRows>
__device__ __forceinline__ QueryBlock LongestFirstBlock(const AttentionDims& dims) {
  const int bh = blockIdx.x;
  return {bh / dims.heads, bh % dims.heads, static_cast<int>(gridDim.y - 1 - blockIdx.y) * kRows};
}
inline dim3 LongestFirstGrid(const AttentionDims& dims, int rows) {
  return dim3(dims.batch * dims.heads, (dims.seq + rows - 1) / rows);
}

}  // namespace cuda
}  // namespace sinklab

#endif  // SINKLAB_LAYERS_CUDA_ATTENTION_MMA_CUH_

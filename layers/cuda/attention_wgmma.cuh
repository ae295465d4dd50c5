// Hopper warpgroup MMA (wgmma.mma_async, sm_90a builds only: the default CUDA_ARCHS=90a) on
// the swizzled 64-column tiles of attention_mma.cuh, for the d = 64 attention kernels: 16%
// faster than mma.sync on an H100 (docs/GPU.md); builds for 90 or 80 take the mma.sync path.
// A warpgroup is 4 consecutive warps (warp w of it owns rows [16 w, 16 w + 16) of the 64-row
// product), and one instruction multiplies a 64 x 16 A by a 16 x 64 B with B (and A, when not
// in registers) read by the tensor cores straight from shared memory: no ldmatrix, and twice
// mma.sync's rate. Every instruction here is .sync.aligned: all 4 warps issue it, or the
// warpgroup hangs, so callers never branch around one per warp.
//
// Layouts (PTX ISA 9.7.15.5, "Register Fragments and Shared Memory Matrix Layouts"):
// - the accumulator D of m64n64 is, per warp, mma.sync's C layout for 8 n-tiles: d[nt][e] is
//   row 16 w + g + 8 (e / 2), col 8 nt + 2 t + e % 2 (lane = 4 g + t), so the kernels'
//   elementwise code and AccumulateFragments read it unchanged;
// - an A operand in registers is, per warp, mma.sync's A fragment of its 16 rows (AFromC);
// - a [rows][64] bf16 tile stored as attention_mma.cuh does (16-byte chunk c of row r at
//   c ^ (r % 8), 128-byte rows, base 1024-byte aligned) is the 128-byte-swizzle canonical
//   layout: read K-major (rows = M or N, the 64 columns = K; stride between 8-row groups 1024
//   bytes; the k-step ks starts 32 ks bytes in) or N-major (rows = K, columns = N; the k-step
//   of rows [16 ks, 16 ks + 16) starts at 2048 ks bytes; 8-row groups 1024 bytes apart).
#ifndef SINKLAB_LAYERS_CUDA_ATTENTION_WGMMA_CUH_
#define SINKLAB_LAYERS_CUDA_ATTENTION_WGMMA_CUH_

#include <cstdint>

#include "layers/cuda/attention_mma.cuh"

// Defined by nvcc when compiling for sm_90a (arch-specific features, wgmma among them).
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define SINKLAB_WGMMA 1
#else
#define SINKLAB_WGMMA 0
#endif

namespace sinklab {
namespace cuda {

// Whether the d = kD kernels take the wgmma path in this compilation pass (device code).
template <int kD>
constexpr bool kUseWgmma = kD == 64 && SINKLAB_WGMMA != 0;

// Tiles that wgmma reads start at a multiple of this (the swizzle's 8-row period); the
// kernels ask for this much more dynamic shared memory and round their base up.
constexpr size_t kTileAlign = 1024;
// The mma.sync path (ldmatrix) needs 16-byte alignment only and keeps the base as it is.
template <int kD>
__device__ __forceinline__ unsigned char* AlignedTiles(unsigned char* smem) {
  if constexpr (!kUseWgmma<kD>) return smem;
  return smem + (kTileAlign - SharedAddress(smem) % kTileAlign) % kTileAlign;
}

// Shared-memory matrix descriptor (PTX ISA, "Matrix Descriptor Format"): start address,
// leading and stride byte offsets (all >> 4), swizzle mode 1 = 128 bytes in bits 62-63.
__device__ __forceinline__ uint64_t SwizzledDescriptor(uint32_t tile, uint32_t lead_bytes,
                                                       uint32_t stride_bytes) {
  return uint64_t{(tile & 0x3FFFF) >> 4} | uint64_t{lead_bytes >> 4} << 16 |
         uint64_t{stride_bytes >> 4} << 32 | uint64_t{1} << 62;
}
// A [rows][64] tile read K-major (the leading offset is unused with a swizzle: 1).
__device__ __forceinline__ uint64_t KMajor(uint32_t tile) {
  return SwizzledDescriptor(tile, 16, 1024);
}
// A [k rows][64] tile read N-major as B (one 64-wide swizzle atom across N: the leading
// offset, between atoms, is unused).
__device__ __forceinline__ uint64_t NMajor(uint32_t tile) {
  return SwizzledDescriptor(tile, 8192, 1024);
}
// Descriptor offsets (in the 16-byte units of the address field) of k-step ks.
__device__ __forceinline__ uint64_t KMajorStep(int ks) { return 2 * ks; }    // 32 bytes
__device__ __forceinline__ uint64_t NMajorStep(int ks) { return 128 * ks; }  // 16 rows

// The instructions exist in sm_90a code only; kernels call these under
// `if constexpr (kUseWgmma<kD>)`, so the other passes never reach the traps.
#if SINKLAB_WGMMA
#define SL_WGMMA_ASM(...) asm volatile(__VA_ARGS__)
#else
#define SL_WGMMA_ASM(...) __trap()
#endif
__device__ __forceinline__ void WgmmaFence() {
  SL_WGMMA_ASM("wgmma.fence.sync.aligned;\n" ::: "memory");
}
__device__ __forceinline__ void WgmmaCommit() {
  SL_WGMMA_ASM("wgmma.commit_group.sync.aligned;\n" ::: "memory");
}
// Waits for all committed wgmma groups of this warpgroup.
__device__ __forceinline__ void WgmmaWait() {
  SL_WGMMA_ASM("wgmma.wait_group.sync.aligned 0;\n" ::: "memory");
}
// Shared memory written through the generic proxy (cp.async, st.shared) becomes visible to
// the tensor cores' async proxy; each writer fences before the block barrier.
__device__ __forceinline__ void FenceSharedForWgmma() {
  SL_WGMMA_ASM("fence.proxy.async.shared::cta;\n" ::: "memory");
}

// Ties registers to this point (an empty asm that reads and writes them): called after
// WgmmaWait on the products and the register A operands of the waited-for wgmmas, so that the
// compiler neither reads a product before the wait nor reuses an operand's registers while
// the tensor cores may still read them (both are invisible to it: the asm is opaque).
__device__ __forceinline__ void KeepRegisters(float (&x)[8][4]) {
#pragma unroll
  for (int i = 0; i < 8; ++i)
    asm volatile("" : "+f"(x[i][0]), "+f"(x[i][1]), "+f"(x[i][2]), "+f"(x[i][3]));
}
__device__ __forceinline__ void KeepRegisters(uint32_t (&x)[4][4]) {
#pragma unroll
  for (int i = 0; i < 4; ++i)
    asm volatile("" : "+r"(x[i][0]), "+r"(x[i][1]), "+r"(x[i][2]), "+r"(x[i][3]));
}

// The wgmma instructions of one scope as a group: fenced at the start (the registers they
// use were written by ordinary instructions), committed and waited for at its end.
struct WgmmaGroup {
  __device__ __forceinline__ WgmmaGroup() { WgmmaFence(); }
  __device__ __forceinline__ ~WgmmaGroup() {
    WgmmaCommit();
    WgmmaWait();
  }
  WgmmaGroup(const WgmmaGroup&) = delete;
  WgmmaGroup& operator=(const WgmmaGroup&) = delete;
};

#define SL_WGMMA_D_OPERANDS                                                                     \
  "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]), "+f"(d[1][0]), "+f"(d[1][1]),     \
      "+f"(d[1][2]), "+f"(d[1][3]), "+f"(d[2][0]), "+f"(d[2][1]), "+f"(d[2][2]), "+f"(d[2][3]), \
      "+f"(d[3][0]), "+f"(d[3][1]), "+f"(d[3][2]), "+f"(d[3][3]), "+f"(d[4][0]), "+f"(d[4][1]), \
      "+f"(d[4][2]), "+f"(d[4][3]), "+f"(d[5][0]), "+f"(d[5][1]), "+f"(d[5][2]), "+f"(d[5][3]), \
      "+f"(d[6][0]), "+f"(d[6][1]), "+f"(d[6][2]), "+f"(d[6][3]), "+f"(d[7][0]), "+f"(d[7][1]), \
      "+f"(d[7][2]), "+f"(d[7][3])
#define SL_WGMMA_D_LIST                                                                    \
  "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, " \
  "%19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}"

// d (64 x 64, fp32) = A B + (accumulate ? d : 0), A and B K-major in shared memory, one
// 16-deep k-step (asynchronous: WgmmaCommit, then WgmmaWait before d is read).
__device__ __forceinline__ void WgmmaShared(float (&d)[8][4], uint64_t a, uint64_t b,
                                            bool accumulate) {
  SL_WGMMA_ASM(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 " SL_WGMMA_D_LIST
      ", %32, %33, p, 1, 1, 0, 0;\n}\n"
      : SL_WGMMA_D_OPERANDS
      : "l"(a), "l"(b), "r"(static_cast<int>(accumulate)));
}
// d += A B, A this warp's A fragment (16 rows x 16) in registers, B N-major in shared memory.
__device__ __forceinline__ void WgmmaRegisters(float (&d)[8][4], const uint32_t (&a)[4],
                                               uint64_t b) {
  SL_WGMMA_ASM(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 " SL_WGMMA_D_LIST
      ", {%32, %33, %34, %35}, %36, p, 1, 1, 1;\n}\n"
      : SL_WGMMA_D_OPERANDS
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(1));
}
#undef SL_WGMMA_D_OPERANDS
#undef SL_WGMMA_D_LIST
#undef SL_WGMMA_ASM

// c = A B^T over 64 columns: rows of a_tile (this warpgroup's 64) times rows of b_tile (64),
// both [64][64] tiles (shared addresses) read K-major. Issued, not waited for.
__device__ __forceinline__ void WgmmaRowsTimesRowsT(float (&c)[8][4], uint32_t a_tile,
                                                    uint32_t b_tile) {
  const uint64_t a = KMajor(a_tile), b = KMajor(b_tile);
#pragma unroll
  for (int ks = 0; ks < 4; ++ks) WgmmaShared(c, a + KMajorStep(ks), b + KMajorStep(ks), ks > 0);
}
// The 64 x 64 C fragments w of a product rounded to bf16 A fragments (a[kk]: columns
// [16 kk, 16 kk + 16)), for WgmmaFragmentsTimesRows after a WgmmaFence.
__device__ __forceinline__ void AFragments(uint32_t (&a)[4][4], const float (&w)[8][4]) {
#pragma unroll
  for (int kk = 0; kk < 4; ++kk) AFromC(a[kk], w[2 * kk], w[2 * kk + 1]);
}
// acc += W B: W the A fragments of AFragments (untouched until the wait), B = rows [0, 64) of
// b_tile (a shared address). Issued, not waited for.
__device__ __forceinline__ void WgmmaFragmentsTimesRows(float (&acc)[8][4],
                                                        const uint32_t (&a)[4][4],
                                                        uint32_t b_tile) {
  const uint64_t b = NMajor(b_tile);
#pragma unroll
  for (int kk = 0; kk < 4; ++kk) WgmmaRegisters(acc, a[kk], b + NMajorStep(kk));
}

}  // namespace cuda
}  // namespace sinklab

#endif  // SINKLAB_LAYERS_CUDA_ATTENTION_WGMMA_CUH_

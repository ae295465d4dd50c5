// Gemm: a cache-blocked fp32 matrix product in portable C++ (GCC vector extensions), in
// the classic Goto/BLIS structure (Goto & van de Geijn 2008, "Anatomy of high-performance
// matrix multiplication").
//
// Tiling plan:
// - c is cut into tiles of tile_m x kTileN; OpenMP threads take whole tiles (static
//   schedule), so every element of c is written by one thread. Tiles are as tall as
//   kMaxTileM (the packed block of b is reused by every kMr-row strip of the tile) but
//   short enough to give every thread at least two tiles.
// - For each tile, k is walked in blocks of kBlockK. The block of b that the tile needs
//   (kBlockK x kTileN) is packed into a thread-local buffer as panels of kNr columns
//   (panel p, row kk at packed[p][kk][0..kNr)), zero-padded past n: the micro-kernel then
//   streams b contiguously whatever b's strides are (this is how b^T costs nothing).
// - The micro-kernel keeps a kMr x kNr block of c in registers (kMr x 2 vectors), and for
//   each kk broadcasts a(i, kk) for its kMr rows and does 2 kMr fused multiply-adds.
// - Rows past m (the last strip) read row m-1 and their results are discarded; columns past
//   n are zero in the packed panel and not stored.
// Summation order of c(i, j): k blocks in order; inside a block, kk ascending into a
// register that starts at zero; the block sum is then added to c. It depends on kBlockK
// only, not on the tile sizes or the thread count, so results are bit-identical for any
// number of threads.
#include "layers/cpu/gemm.h"

#include <omp.h>

#include <algorithm>
#include <cstring>

namespace sinklab {
namespace {

#if defined(__AVX512F__)
constexpr int kLanes = 16;  // floats per vector register
constexpr int kMr = 12;     // rows of c per micro-kernel (12 x 2 zmm accumulators)
#elif defined(__AVX__)
constexpr int kLanes = 8;
constexpr int kMr = 6;  // 6 x 2 ymm accumulators + 2 b vectors + 1 broadcast <= 16 registers
#else
constexpr int kLanes = 4;
constexpr int kMr = 6;
#endif
constexpr int kNr = 2 * kLanes;  // columns of c per micro-kernel
constexpr int64_t kMaxTileM = 32 * kMr;
constexpr int64_t kTileN = 4 * kNr;
constexpr int64_t kBlockK = 256;
// Below this many multiply-adds a product runs on the calling thread.
constexpr int64_t kParallelWork = int64_t{1} << 15;

typedef float Vec __attribute__((vector_size(kLanes * sizeof(float))));

inline Vec LoadVec(const float* p) {
  Vec v;
  std::memcpy(&v, p, sizeof(Vec));
  return v;
}
inline void StoreVec(float* p, Vec v) { std::memcpy(p, &v, sizeof(Vec)); }

// packed[p][kk][j] = b(k0 + kk, n0 + p * kNr + j), zero past column n.
void PackB(float* packed, StridedMatrix b, int64_t k0, int64_t kb, int64_t n0, int64_t nb) {
  const int64_t panels = (nb + kNr - 1) / kNr;
  for (int64_t p = 0; p < panels; ++p) {
    float* panel = packed + p * kb * kNr;
    const int64_t cols = std::min<int64_t>(kNr, nb - p * kNr);
    for (int64_t kk = 0; kk < kb; ++kk) {
      float* dst = panel + kk * kNr;
      const float* src = b.data + (k0 + kk) * b.row_stride + (n0 + p * kNr) * b.col_stride;
      if (cols == kNr && b.col_stride == 1) {  // the common case: two vector copies
        StoreVec(dst, LoadVec(src));
        StoreVec(dst + kLanes, LoadVec(src + kLanes));
        continue;
      }
      for (int64_t j = 0; j < cols; ++j) dst[j] = src[j * b.col_stride];
      for (int64_t j = cols; j < kNr; ++j) dst[j] = 0.0f;
    }
  }
}

// acc[i] (2 vectors = kNr columns) = sum_kk a_rows[i][kk * a_col] * panel[kk][:].
inline void MicroKernel(const float* const a_rows[kMr], int64_t a_col, const float* panel,
                        int64_t kb, Vec acc[kMr][2]) {
  for (int i = 0; i < kMr; ++i) acc[i][0] = acc[i][1] = Vec{};
  for (int64_t kk = 0; kk < kb; ++kk) {
    const Vec b0 = LoadVec(panel + kk * kNr);
    const Vec b1 = LoadVec(panel + kk * kNr + kLanes);
#pragma GCC unroll 16
    for (int i = 0; i < kMr; ++i) {
      const float a = a_rows[i][kk * a_col];
      acc[i][0] += a * b0;
      acc[i][1] += a * b1;
    }
  }
}

// c[rows x cols] (=|+=) acc, for the valid part of a kMr x kNr block.
inline void StoreBlock(float* c, int64_t ldc, int64_t rows, int64_t cols, bool add,
                       const Vec acc[kMr][2]) {
  for (int64_t i = 0; i < rows; ++i) {
    float* row = c + i * ldc;
    if (cols == kNr) {
      StoreVec(row, add ? LoadVec(row) + acc[i][0] : acc[i][0]);
      StoreVec(row + kLanes, add ? LoadVec(row + kLanes) + acc[i][1] : acc[i][1]);
    } else {
      alignas(64) float tmp[kNr];
      StoreVec(tmp, acc[i][0]);
      StoreVec(tmp + kLanes, acc[i][1]);
      for (int64_t j = 0; j < cols; ++j) row[j] = add ? row[j] + tmp[j] : tmp[j];
    }
  }
}

// One kTileM x kTileN tile of c, all of k.
void GemmTile(float* c, int64_t ldc, StridedMatrix a, StridedMatrix b, int64_t m0, int64_t mb,
              int64_t n0, int64_t nb, int64_t k, int64_t m, bool accumulate, float* packed) {
  for (int64_t k0 = 0; k0 < k; k0 += kBlockK) {
    const int64_t kb = std::min(kBlockK, k - k0);
    const bool add = accumulate || k0 > 0;
    PackB(packed, b, k0, kb, n0, nb);
    for (int64_t i0 = m0; i0 < m0 + mb; i0 += kMr) {
      const int64_t rows = std::min<int64_t>(kMr, m0 + mb - i0);
      const float* a_rows[kMr];
      for (int i = 0; i < kMr; ++i) {
        const int64_t row = std::min<int64_t>(i0 + i, m - 1);
        a_rows[i] = a.data + row * a.row_stride + k0 * a.col_stride;
      }
      for (int64_t j0 = 0; j0 < nb; j0 += kNr) {
        Vec acc[kMr][2];
        MicroKernel(a_rows, a.col_stride, packed + (j0 / kNr) * kb * kNr, kb, acc);
        StoreBlock(c + i0 * ldc + n0 + j0, ldc, rows, std::min<int64_t>(kNr, nb - j0), add,
                   acc);
      }
    }
  }
}

void GemmImpl(float* c, int64_t ldc, StridedMatrix a, StridedMatrix b, int64_t m, int64_t n,
              int64_t k, bool accumulate, bool parallel) {
  if (m == 0 || n == 0) return;
  if (k == 0) {
    if (!accumulate) {
      for (int64_t i = 0; i < m; ++i) std::fill(c + i * ldc, c + i * ldc + n, 0.0f);
    }
    return;
  }
  parallel = parallel && m * n * k > kParallelWork;
  const int64_t threads = parallel ? omp_get_max_threads() : 1;
  const int64_t tiles_n = (n + kTileN - 1) / kTileN;
  const int64_t row_tiles_wanted = std::max<int64_t>(1, (2 * threads + tiles_n - 1) / tiles_n);
  const int64_t rows_per_tile = (m + row_tiles_wanted - 1) / row_tiles_wanted;
  const int64_t tile_m = std::min(kMaxTileM, (rows_per_tile + kMr - 1) / kMr * kMr);
  const int64_t tiles = (m + tile_m - 1) / tile_m * tiles_n;
  auto run_tile = [&](int64_t t, float* packed) {
    const int64_t m0 = (t / tiles_n) * tile_m;
    const int64_t n0 = (t % tiles_n) * kTileN;
    GemmTile(c, ldc, a, b, m0, std::min(tile_m, m - m0), n0, std::min(kTileN, n - n0), k, m,
             accumulate, packed);
  };
  if (!parallel || tiles == 1) {
    alignas(64) float packed[kBlockK * kTileN];
    for (int64_t t = 0; t < tiles; ++t) run_tile(t, packed);
    return;
  }
#pragma omp parallel
  {
    alignas(64) float packed[kBlockK * kTileN];
#pragma omp for schedule(static)
    for (int64_t t = 0; t < tiles; ++t) run_tile(t, packed);
  }
}

}  // namespace

void Gemm(float* c, int64_t ldc, StridedMatrix a, StridedMatrix b, int64_t m, int64_t n,
          int64_t k, bool accumulate) {
  GemmImpl(c, ldc, a, b, m, n, k, accumulate, /*parallel=*/true);
}

void GemmOneThread(float* c, int64_t ldc, StridedMatrix a, StridedMatrix b, int64_t m,
                   int64_t n, int64_t k, bool accumulate) {
  GemmImpl(c, ldc, a, b, m, n, k, accumulate, /*parallel=*/false);
}

}  // namespace sinklab

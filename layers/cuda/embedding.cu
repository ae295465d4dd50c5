// CUDA token embedding (reference: layers/cpu/embedding.cc). out [N, D] = table [V, D] rows;
// dtable [V, D] f32 += scatter of dout [N, D].
//
// Forward: one thread per packet of W channels of an output row.
//
// Backward, deterministic with neither atomics nor scratch memory. Tiling plan:
// - The vocabulary is cut into kVocabRanges contiguous ranges of R rows; block r owns the
//   dtable rows [r R, (r + 1) R) and is their only writer.
// - The block scans all token ids in order, kTile positions at a time (kItems consecutive
//   ones per thread), and appends the positions whose id falls in its range to a shared
//   buffer of kTile entries (order-preserving compaction with a block-wide exclusive scan).
// - When the next tile could overflow the buffer, and at the end, the buffer is flushed:
//   cub::BlockRadixSort orders the entries by the key (row in range, buffer index); the keys
//   are unique, so the order is fully determined. Threads then take packets of W channels
//   and walk the sorted entries, summing each run of one row in fp32 (positions in increasing
//   order) and adding the run's sum to dtable once.
// Every dtable element is therefore updated by one thread, in an order fixed by the token
// ids alone. Cost: each block reads all N ids (L2-resident), and a range holding a very
// frequent token does that token's rows alone; both are small next to a training step.
//
// Ids outside [0, V) are not checked on the host (that would synchronize the stream): the
// forward writes a zero row for them and the backward drops their gradient (no block owns
// them); no memory outside the tensors is touched.
#include <cub/block/block_radix_sort.cuh>
#include <cub/block/block_scan.cuh>

#include "layers/cuda/cuda_backend.h"
#include "layers/cuda/kernel_util.cuh"

namespace sinklab {
namespace cuda {
namespace {

constexpr int kScatterThreads = 256;
constexpr int kItems = 8;                           // ids per thread per tile
constexpr int kTile = kScatterThreads * kItems;     // positions per tile = buffer entries
constexpr int kIndexBits = 11;                      // log2(kTile): buffer index in a key
constexpr uint32_t kIndexMask = (1u << kIndexBits) - 1;
constexpr int kVocabRanges = 256;                   // ~2 blocks per SM on an H100
constexpr int kLoadsAhead = 4;                      // dout rows in flight per thread
static_assert(kTile == 1 << kIndexBits, "the key's index field must address the buffer");

template <int W, typename TO, typename TT>
__global__ void EmbeddingForwardKernel(TO* out, const int32_t* tokens, const TT* table,
                                       int64_t rows, int64_t vocab, int64_t dim) {
  const int64_t packets_per_row = dim / W;
  const int64_t total = rows * packets_per_row;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < total;
       i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t row = i / packets_per_row;
    const int64_t col = (i - row * packets_per_row) * W;
    const int32_t id = tokens[row];
    float v[W];
    if (id >= 0 && id < vocab) {
      LoadF<W>(table + id * dim + col, v);
    } else {
#pragma unroll
      for (int k = 0; k < W; ++k) v[k] = 0.0f;
    }
    StoreF<W>(out + row * dim + col, v);
  }
}

// Adds the buffered entries (keys: sorted below; positions: token positions) into dtable.
template <int W, typename T, typename SortStorage>
__device__ void FlushRuns(float* dtable, const T* dout, int64_t dim, int64_t first_row,
                          int count, int key_bits, uint32_t* keys, const int32_t* positions,
                          SortStorage& sort_storage) {
  using Sort = cub::BlockRadixSort<uint32_t, kScatterThreads, kItems>;
  __syncthreads();  // the entries are written; the scan's storage (aliased) is free
  uint32_t sorted[kItems];
#pragma unroll
  for (int k = 0; k < kItems; ++k) {
    const int idx = threadIdx.x * kItems + k;
    sorted[k] = idx < count ? keys[idx] : 0xffffffffu;  // padding sorts last (see Backward)
  }
  Sort(sort_storage).Sort(sorted, 0, key_bits);
  __syncthreads();
#pragma unroll
  for (int k = 0; k < kItems; ++k) keys[threadIdx.x * kItems + k] = sorted[k];  // blocked
  __syncthreads();

  for (int64_t col = threadIdx.x * int64_t{W}; col < dim; col += int64_t{blockDim.x} * W) {
    float acc[W];
#pragma unroll
    for (int k = 0; k < W; ++k) acc[k] = 0.0f;
    for (int first = 0; first < count; first += kLoadsAhead) {
      // Issue kLoadsAhead independent dout loads before any dtable update (a frequent
      // token's long run would otherwise wait one memory latency per position).
      float g[kLoadsAhead][W];
#pragma unroll
      for (int u = 0; u < kLoadsAhead; ++u) {
        if (first + u < count) {
          const int32_t pos = positions[keys[first + u] & kIndexMask];
          LoadF<W>(dout + int64_t{pos} * dim + col, g[u]);
        }
      }
#pragma unroll
      for (int u = 0; u < kLoadsAhead; ++u) {
        const int i = first + u;
        if (i >= count) break;
#pragma unroll
        for (int k = 0; k < W; ++k) acc[k] += g[u][k];
        const uint32_t row = keys[i] >> kIndexBits;
        if (i + 1 == count || (keys[i + 1] >> kIndexBits) != row) {  // the row's run ends
          float* dst = dtable + (first_row + row) * dim + col;
          float sum[W];
          LoadF<W>(dst, sum);
#pragma unroll
          for (int k = 0; k < W; ++k) {
            sum[k] += acc[k];
            acc[k] = 0.0f;
          }
          StoreF<W>(dst, sum);
        }
      }
    }
  }
  __syncthreads();  // the buffer is refilled next
}

template <int W, typename T>
__global__ void __launch_bounds__(kScatterThreads)
    EmbeddingBackwardKernel(float* dtable, const T* dout, const int32_t* tokens, int64_t rows,
                            int64_t vocab, int64_t dim, int64_t rows_per_range, int key_bits) {
  using Sort = cub::BlockRadixSort<uint32_t, kScatterThreads, kItems>;
  using Scan = cub::BlockScan<int, kScatterThreads>;
  __shared__ union {
    typename Sort::TempStorage sort;
    typename Scan::TempStorage scan;
  } storage;
  __shared__ uint32_t keys[kTile];      // (row - first_row) << kIndexBits | buffer index
  __shared__ int32_t positions[kTile];  // the token position of each buffer entry

  const int64_t first_row = blockIdx.x * rows_per_range;
  const int64_t end_row = min(first_row + rows_per_range, vocab);
  int count = 0;  // buffered entries; the same value in every thread
  for (int64_t tile = 0; tile < rows; tile += kTile) {
    // Thread t holds positions tile + t kItems + k (blocked), so the exclusive scan of the
    // per-thread counts gives each match its rank in position order.
    int32_t local_row[kItems];
    int matches = 0;
#pragma unroll
    for (int k = 0; k < kItems; ++k) {
      const int64_t pos = tile + threadIdx.x * kItems + k;
      const int64_t id = pos < rows ? tokens[pos] : -1;
      const bool mine = id >= first_row && id < end_row;
      local_row[k] = mine ? static_cast<int32_t>(id - first_row) : -1;
      matches += mine;
    }
    int offset, tile_matches;
    Scan(storage.scan).ExclusiveSum(matches, offset, tile_matches);
    if (count + tile_matches > kTile) {  // uniform: every thread has the same values
      FlushRuns<W>(dtable, dout, dim, first_row, count, key_bits, keys, positions,
                   storage.sort);
      count = 0;
    }
#pragma unroll
    for (int k = 0; k < kItems; ++k) {
      if (local_row[k] >= 0) {
        const int idx = count + offset++;
        keys[idx] = (static_cast<uint32_t>(local_row[k]) << kIndexBits) | idx;
        positions[idx] = static_cast<int32_t>(tile + threadIdx.x * kItems + k);
      }
    }
    count += tile_matches;
    __syncthreads();  // the scan storage is reused by the next tile
  }
  if (count > 0) {
    FlushRuns<W>(dtable, dout, dim, first_row, count, key_bits, keys, positions, storage.sort);
  }
}

void CheckTokens(const Tensor& tokens, int64_t rows, const char* what) {
  SL_CHECK_MSG(tokens.dtype() == DType::kI32 && tokens.numel() == rows,
               absl::StrCat(what, ": tokens ", tokens.ShapeString(), " ", DTypeName(tokens.dtype()),
                            " for ", rows, " rows"));
  CheckCuda(tokens, what);
}

}  // namespace
}  // namespace cuda

using cuda::CanVectorize;
using cuda::CheckCuda;
using cuda::DispatchFloat;
using cuda::DispatchWidth;
using cuda::GridFor;
using cuda::Ptr;

void CudaBackend::EmbeddingForward(const Tensor& out, const Tensor& tokens, const Tensor& table) {
  SL_CHECK_MSG(table.rank() == 2 && out.numel() == tokens.numel() * table.dim(1),
               absl::StrCat("EmbeddingForward: out ", out.ShapeString(), " tokens ",
                            tokens.ShapeString(), " table ", table.ShapeString()));
  const int64_t rows = tokens.numel(), vocab = table.dim(0), dim = table.dim(1);
  cuda::CheckTokens(tokens, rows, "EmbeddingForward");
  CheckCuda(out, "EmbeddingForward out");
  CheckCuda(table, "EmbeddingForward table");
  DispatchFloat(out.dtype(), [&](auto to) {
    using TO = decltype(to);
    DispatchFloat(table.dtype(), [&](auto tt) {
      using TT = decltype(tt);
      DispatchWidth(CanVectorize(dim, out, table), [&](auto width) {
        constexpr int W = decltype(width)::value;
        cuda::EmbeddingForwardKernel<W, TO, TT><<<GridFor(rows * dim / W), cuda::kBlock, 0,
                                                     stream_>>>(
            Ptr<TO>(out), tokens.i32(), Ptr<TT>(table), rows, vocab, dim);
      });
    });
  });
  SL_CUDA_LAUNCH_CHECK();
}

void CudaBackend::EmbeddingBackward(const Tensor& dtable, const Tensor& dout,
                                    const Tensor& tokens) {
  SL_CHECK_MSG(dtable.rank() == 2 && dtable.dtype() == DType::kF32 &&
                   dout.numel() == tokens.numel() * dtable.dim(1),
               absl::StrCat("EmbeddingBackward: dtable ", dtable.ShapeString(), " ",
                            DTypeName(dtable.dtype()), " (f32) dout ", dout.ShapeString(),
                            " tokens ", tokens.ShapeString()));
  const int64_t rows = tokens.numel(), vocab = dtable.dim(0), dim = dtable.dim(1);
  cuda::CheckTokens(tokens, rows, "EmbeddingBackward");
  CheckCuda(dtable, "EmbeddingBackward dtable");
  CheckCuda(dout, "EmbeddingBackward dout");
  SL_CHECK_MSG(rows < (int64_t{1} << 31), absl::StrCat("EmbeddingBackward: ", rows, " tokens"));
  if (rows == 0 || vocab == 0) return;
  const int64_t rows_per_range = (vocab + cuda::kVocabRanges - 1) / cuda::kVocabRanges;
  const int64_t ranges = (vocab + rows_per_range - 1) / rows_per_range;
  int row_bits = 0;
  while ((int64_t{1} << row_bits) < rows_per_range) ++row_bits;
  // A real key never equals the padding 0xffffffff in the sorted bits: that would need
  // buffer index kTile - 1, i.e. a full buffer, which has no padding.
  const int key_bits = cuda::kIndexBits + row_bits;
  SL_CHECK_MSG(key_bits <= 32, absl::StrCat("EmbeddingBackward: vocab ", vocab, " too large"));
  DispatchFloat(dout.dtype(), [&](auto t) {
    using T = decltype(t);
    DispatchWidth(CanVectorize(dim, dtable, dout), [&](auto width) {
      constexpr int W = decltype(width)::value;
      cuda::EmbeddingBackwardKernel<W, T>
          <<<static_cast<unsigned>(ranges), cuda::kScatterThreads, 0, stream_>>>(
              dtable.f32(), Ptr<T>(dout), tokens.i32(), rows, vocab, dim, rows_per_range,
              key_bits);
    });
  });
  SL_CUDA_LAUNCH_CHECK();
}

}  // namespace sinklab

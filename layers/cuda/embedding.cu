// CUDA token embedding (reference: layers/cpu/embedding.cc). out [N, D] = table [V, D] rows;
// dtable [V, D] f32 += scatter of dout [N, D].
//
// Forward: one thread per packet of W channels of an output row.
//
// Backward, deterministic (no float atomics):
// 1. The ids are sorted with their positions (cub::DeviceRadixSort::SortPairs is stable, so
//    the positions of one id stay in increasing order). Ids outside [0, V) are mapped to V
//    first and their gradient is dropped (the forward wrote zero rows for them).
// 2. The sorted entries are cut into chunks of kChunk; block (chunk, column slice) sums each
//    run of one id inside its chunk in fp32. A run wholly inside the chunk is added to its
//    dtable row at once; a run crossing a chunk boundary leaves its first piece in head[chunk]
//    and each later piece in tail[chunk] (a chunk holds at most one of each).
// 3. For each chunk holding a head piece, one pass adds head + the following chunks' tail
//    pieces, in chunk order, to the row.
// Every dtable element is thus written by one thread per run, in an order fixed by the ids,
// and a frequent id (a byte corpus puts all 16k tokens of a step on ~70 ids) is spread over
// many blocks instead of serializing one.
#include <algorithm>

#include <cub/device/device_radix_sort.cuh>

#include "layers/cuda/cuda_backend.h"
#include "layers/cuda/kernel_util.cuh"

namespace sinklab {
namespace cuda {
namespace {

constexpr int kChunk = 32;         // sorted entries per block of the backward
constexpr int kColumnThreads = 128;  // threads per block, each W columns
constexpr int kLoadsAhead = 4;       // dout rows in flight per thread

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

// keys[i] = tokens[i] (or vocab when outside [0, vocab)), positions[i] = i.
__global__ void EmbeddingKeysKernel(uint32_t* keys, int32_t* positions, const int32_t* tokens,
                                    int64_t rows, int64_t vocab) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < rows;
       i += int64_t{gridDim.x} * blockDim.x) {
    const int32_t id = tokens[i];
    keys[i] = id >= 0 && id < vocab ? static_cast<uint32_t>(id) : static_cast<uint32_t>(vocab);
    positions[i] = static_cast<int32_t>(i);
  }
}

template <int W>
__device__ __forceinline__ void AddRow(float* dst, const float (&v)[W]) {
  float sum[W];
  LoadF<W>(dst, sum);
#pragma unroll
  for (int k = 0; k < W; ++k) sum[k] += v[k];
  StoreF<W>(dst, sum);
}

// Step 2 (see the top of the file): grid (chunks, column slices).
template <int W, typename T>
__global__ void __launch_bounds__(kColumnThreads)
    EmbeddingChunkKernel(float* dtable, float* head, float* tail, const T* dout,
                         const uint32_t* keys, const int32_t* positions, int64_t rows,
                         int64_t vocab, int64_t dim) {
  const int64_t col = (int64_t{blockIdx.y} * blockDim.x + threadIdx.x) * W;
  if (col >= dim) return;
  const int64_t chunk = blockIdx.x, begin = chunk * kChunk;
  const int64_t end = min(begin + kChunk, rows);
  float acc[W];
#pragma unroll
  for (int k = 0; k < W; ++k) acc[k] = 0.0f;
  int64_t piece_begin = begin;
  for (int64_t first = begin; first < end; first += kLoadsAhead) {
    float g[kLoadsAhead][W];  // independent loads before the sums (memory-level parallelism)
#pragma unroll
    for (int u = 0; u < kLoadsAhead; ++u) {
      if (first + u < end) LoadF<W>(dout + int64_t{positions[first + u]} * dim + col, g[u]);
    }
#pragma unroll
    for (int u = 0; u < kLoadsAhead; ++u) {
      const int64_t i = first + u;
      if (i >= end) break;
#pragma unroll
      for (int k = 0; k < W; ++k) acc[k] += g[u][k];
      const uint32_t key = keys[i];
      const bool run_ends = i + 1 == rows || keys[i + 1] != key;
      if (!run_ends && i + 1 < end) continue;
      const bool run_starts = piece_begin == 0 || keys[piece_begin - 1] != key;
      if (key < vocab) {
        if (run_starts && run_ends) {
          AddRow<W>(dtable + int64_t{key} * dim + col, acc);
        } else {
          StoreF<W>((run_starts ? head : tail) + chunk * dim + col, acc);
        }
      }
#pragma unroll
      for (int k = 0; k < W; ++k) acc[k] = 0.0f;
      piece_begin = i + 1;
    }
  }
}

// Step 3: the runs that start in a chunk and cross its end.
template <int W>
__global__ void __launch_bounds__(kColumnThreads)
    EmbeddingMergeKernel(float* dtable, const float* head, const float* tail,
                         const uint32_t* keys, int64_t rows, int64_t vocab, int64_t dim) {
  const int64_t col = (int64_t{blockIdx.y} * blockDim.x + threadIdx.x) * W;
  if (col >= dim) return;
  const int64_t chunk = blockIdx.x, begin = chunk * kChunk, end = begin + kChunk;
  if (end >= rows) return;  // the last chunk: nothing crosses its end
  const uint32_t key = keys[end - 1];
  if (keys[end] != key || key >= vocab) return;
  // The last run of the chunk must start here: not the whole chunk continuing a run.
  if (begin > 0 && keys[begin] == key && keys[begin - 1] == key) return;
  float sum[W];
  LoadF<W>(head + chunk * dim + col, sum);
  for (int64_t c = chunk + 1;; ++c) {
    float piece[W];
    LoadF<W>(tail + c * dim + col, piece);
#pragma unroll
    for (int k = 0; k < W; ++k) sum[k] += piece[k];
    const int64_t c_end = (c + 1) * kChunk;
    if (c_end >= rows || keys[c_end] != key) break;  // the run ends in chunk c
  }
  AddRow<W>(dtable + int64_t{key} * dim + col, sum);
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
  SL_CHECK_MSG(vocab < (int64_t{1} << 31), absl::StrCat("EmbeddingBackward: vocab ", vocab));
  int key_bits = 1;
  while ((int64_t{1} << key_bits) <= vocab) ++key_bits;  // keys are in [0, vocab]
  const int64_t chunks = (rows + cuda::kChunk - 1) / cuda::kChunk;
  // Workspace: keys and positions (in, sorted), head and tail pieces, cub's temporary storage.
  size_t sort_bytes = 0;
  SL_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, sort_bytes, (uint32_t*)nullptr,
                                                (uint32_t*)nullptr, (int32_t*)nullptr,
                                                (int32_t*)nullptr, rows, 0, key_bits, stream_));
  const auto round_up = [](size_t bytes) { return (bytes + 255) / 256 * 256; };
  const size_t ids_bytes = round_up(rows * sizeof(uint32_t));
  const size_t pieces_bytes = round_up(chunks * dim * sizeof(float));
  char* ws = static_cast<char*>(Workspace(4 * ids_bytes + 2 * pieces_bytes + sort_bytes));
  auto* keys_in = reinterpret_cast<uint32_t*>(ws);
  auto* keys = reinterpret_cast<uint32_t*>(ws + ids_bytes);
  auto* positions_in = reinterpret_cast<int32_t*>(ws + 2 * ids_bytes);
  auto* positions = reinterpret_cast<int32_t*>(ws + 3 * ids_bytes);
  auto* head = reinterpret_cast<float*>(ws + 4 * ids_bytes);
  auto* tail = reinterpret_cast<float*>(ws + 4 * ids_bytes + pieces_bytes);
  void* sort_storage = ws + 4 * ids_bytes + 2 * pieces_bytes;
  cuda::EmbeddingKeysKernel<<<GridFor(rows), cuda::kBlock, 0, stream_>>>(
      keys_in, positions_in, tokens.i32(), rows, vocab);
  SL_CUDA_LAUNCH_CHECK();
  SL_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(sort_storage, sort_bytes, keys_in, keys,
                                                positions_in, positions, rows, 0, key_bits,
                                                stream_));
  DispatchFloat(dout.dtype(), [&](auto t) {
    using T = decltype(t);
    DispatchWidth(CanVectorize(dim, dtable, dout), [&](auto width) {
      constexpr int W = decltype(width)::value;
      const int64_t packets = dim / W;
      const int threads = static_cast<int>(std::min<int64_t>(cuda::kColumnThreads, packets));
      const dim3 grid(static_cast<unsigned>(chunks),
                      static_cast<unsigned>((packets + threads - 1) / threads));
      cuda::EmbeddingChunkKernel<W, T><<<grid, threads, 0, stream_>>>(
          dtable.f32(), head, tail, Ptr<T>(dout), keys, positions, rows, vocab, dim);
      SL_CUDA_LAUNCH_CHECK();
      cuda::EmbeddingMergeKernel<W><<<grid, threads, 0, stream_>>>(dtable.f32(), head, tail,
                                                                   keys, rows, vocab, dim);
    });
  });
  SL_CUDA_LAUNCH_CHECK();
}

}  // namespace sinklab

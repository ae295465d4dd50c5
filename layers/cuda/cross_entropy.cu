// CUDA cross-entropy over logits (reference: layers/cpu/cross_entropy.cc):
// loss_n = lse_n - z_n,target with lse_n = log sum_v exp(z_nv);
// dz_nv = (softmax(z_n)_v - [v == target]) * dloss, 0 on rows whose target is -1.
//
// Plan: one block per row (V up to ~128k). The forward makes a single pass with an online
// (running max, sum of exp(z - max)) pair per thread (Milakov & Gimelshein 2018, "Online
// normalizer calculation for softmax"), merged across the block by a fixed shuffle/shared
// tree (deterministic). The backward recomputes softmax from the cached lse and overwrites
// dlogits; each element is read and then written by the same thread, so dlogits may alias
// logits. Rows of odd length V are not 16-byte aligned in general: each row is visited as a
// scalar head up to the first 16-byte boundary, 16-byte packets, and a scalar tail.
//
// Targets outside [-1, V) are not checked on the host (that would synchronize the stream):
// such a row gets loss NaN (so the step's loss shows it) and a NaN dlogits row; no memory
// outside the row is read or written.
#include <algorithm>
#include <cmath>

#include "layers/cuda/cuda_backend.h"
#include "layers/cuda/kernel_util.cuh"

namespace sinklab {
namespace cuda {
namespace {

// Running softmax normalizer: sum = sum of exp(z - max) over the elements seen.
struct MaxSum {
  float max;
  float sum;
};

// sum * exp(from - to), with -inf - -inf (nothing seen yet on either side) giving sum.
__device__ __forceinline__ float Rescale(float sum, float from, float to) {
  return from == to ? sum : sum * __expf(from - to);
}

__device__ __forceinline__ MaxSum Combine(MaxSum a, MaxSum b) {
  const float m = fmaxf(a.max, b.max);
  return {m, Rescale(a.sum, a.max, m) + Rescale(b.sum, b.max, m)};
}

// Block-wide Combine in a fixed tree; thread 0 gets the result. shared: 32 entries.
__device__ MaxSum BlockCombine(MaxSum v, MaxSum* shared) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  for (int o = 16; o > 0; o >>= 1) {
    v = Combine(v,
                {__shfl_xor_sync(0xffffffffu, v.max, o), __shfl_xor_sync(0xffffffffu, v.sum, o)});
  }
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  if (warp == 0) {
    const int warps = blockDim.x >> 5;
    v = lane < warps ? shared[lane] : MaxSum{-INFINITY, 0.0f};
    for (int o = 16; o > 0; o >>= 1) {
      v = Combine(v,
                  {__shfl_xor_sync(0xffffffffu, v.max, o), __shfl_xor_sync(0xffffffffu, v.sum, o)});
    }
  }
  return v;
}

// The block visits row[0, len): f(i, width) for a scalar head up to the first 16-byte
// boundary, packets of kVec (when kVectorize), then single elements.
template <bool kVectorize, typename T, typename F>
__device__ __forceinline__ void ForEachPacketInRow(const T* row, int64_t len, F&& f) {
  int64_t body_begin = 0, body_end = 0;
  if constexpr (kVectorize) {
    const int64_t misaligned = reinterpret_cast<uintptr_t>(row) % 16 / sizeof(T);
    body_begin = min(len, misaligned == 0 ? 0 : 16 / int64_t{sizeof(T)} - misaligned);
    body_end = body_begin + (len - body_begin) / kVec * kVec;
  }
  for (int64_t i = threadIdx.x; i < body_begin; i += blockDim.x) {
    f(i, std::integral_constant<int, 1>{});
  }
  for (int64_t i = body_begin + threadIdx.x * int64_t{kVec}; i < body_end;
       i += int64_t{blockDim.x} * kVec) {
    f(i, std::integral_constant<int, kVec>{});
  }
  for (int64_t i = body_end + threadIdx.x; i < len; i += blockDim.x) {
    f(i, std::integral_constant<int, 1>{});
  }
}

// The block's (max, sum of exp(z - max)) of row z[0, V); thread 0 gets it.
template <typename T>
__device__ MaxSum RowMaxSum(const T* z, int64_t vocab, MaxSum* shared) {
  MaxSum acc{-INFINITY, 0.0f};
  ForEachPacketInRow<true>(z, vocab, [&](int64_t i, auto width) {
    constexpr int P = decltype(width)::value;
    float v[P];
    LoadF<P>(z + i, v);
    float m = acc.max;
#pragma unroll
    for (int k = 0; k < P; ++k) m = fmaxf(m, v[k]);
    float sum = Rescale(acc.sum, acc.max, m);
#pragma unroll
    for (int k = 0; k < P; ++k) sum += __expf(v[k] - m);
    acc = {m, sum};
  });
  return BlockCombine(acc, shared);
}

// Thread 0: the row's lse and loss (NaN for a target outside [-1, V)), read from z before
// any of it is overwritten.
template <typename T>
__device__ float RowLoss(const T* z, float row_lse, int32_t target, int64_t vocab) {
  if (target == -1) return 0.0f;
  return target >= 0 && target < vocab ? row_lse - ToF(z[target]) : NAN;
}

// dz = (exp(z - lse) - onehot) * dloss over the row; each element is read, then written by
// the same thread, so dz may alias z.
template <bool kVectorize, typename T>
__device__ void WriteRowGrad(T* dz, const T* z, int32_t target, float row_lse, int64_t vocab,
                             float dloss) {
  const bool ignored = target == -1, invalid = target < -1 || target >= vocab;
  ForEachPacketInRow<kVectorize>(dz, vocab, [&](int64_t i, auto width) {
    constexpr int P = decltype(width)::value;
    float v[P];
    if (ignored || invalid) {
#pragma unroll
      for (int k = 0; k < P; ++k) v[k] = ignored ? 0.0f : NAN;
    } else {
      LoadF<P>(z + i, v);
#pragma unroll
      for (int k = 0; k < P; ++k) {
        const float onehot = i + k == target ? 1.0f : 0.0f;
        v[k] = (__expf(v[k] - row_lse) - onehot) * dloss;
      }
    }
    StoreF<P>(dz + i, v);
  });
}

template <typename T>
__global__ void CrossEntropyForwardKernel(float* losses, float* lse, const T* logits,
                                          const int32_t* targets, int64_t vocab) {
  __shared__ MaxSum shared[32];
  const T* z = logits + blockIdx.x * vocab;
  const MaxSum acc = RowMaxSum(z, vocab, shared);
  if (threadIdx.x == 0) {
    const float row_lse = acc.max + logf(acc.sum);
    lse[blockIdx.x] = row_lse;
    losses[blockIdx.x] = RowLoss(z, row_lse, targets[blockIdx.x], vocab);
  }
}

template <bool kVectorize, typename T>
__global__ void CrossEntropyBackwardKernel(T* dlogits, const T* logits, const float* lse,
                                           const int32_t* targets, int64_t vocab, float dloss) {
  WriteRowGrad<kVectorize>(dlogits + blockIdx.x * vocab, logits + blockIdx.x * vocab,
                           targets[blockIdx.x], lse[blockIdx.x], vocab, dloss);
}

// Forward and backward in one visit of the row: its second read (the gradient pass) comes
// from L2, so the logits cross HBM once in and once out. *dloss from MeanScaleKernel.
template <bool kVectorize, typename T>
__global__ void CrossEntropyFusedKernel(float* losses, float* lse, T* dlogits, const T* logits,
                                        const int32_t* targets, int64_t vocab, const float* dloss) {
  __shared__ MaxSum shared[32];
  __shared__ float row_lse;
  const T* z = logits + blockIdx.x * vocab;
  const int32_t target = targets[blockIdx.x];
  const MaxSum acc = RowMaxSum(z, vocab, shared);
  if (threadIdx.x == 0) {
    row_lse = acc.max + logf(acc.sum);
    lse[blockIdx.x] = row_lse;
    losses[blockIdx.x] = RowLoss(z, row_lse, target, vocab);
  }
  __syncthreads();  // row_lse out, z[target] read before the row is overwritten
  WriteRowGrad<kVectorize>(dlogits + blockIdx.x * vocab, z, target, row_lse, vocab, *dloss);
}

// *dloss = scale / max(1, #targets >= 0): the gradient factor of scale * the mean loss.
// One block; the count stays on the device.
__global__ void MeanScaleKernel(float* dloss, const int32_t* targets, int64_t n, float scale) {
  __shared__ int64_t warp_counts[32];
  int64_t count = 0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) count += targets[i] >= 0;
  for (int o = 16; o > 0; o >>= 1) count += __shfl_xor_sync(0xffffffffu, count, o);
  if ((threadIdx.x & 31) == 0) warp_counts[threadIdx.x >> 5] = count;
  __syncthreads();
  if (threadIdx.x == 0) {
    int64_t total = 0;
    for (int w = 0; w < static_cast<int>(blockDim.x >> 5); ++w) total += warp_counts[w];
    *dloss = scale / static_cast<float>(total > 0 ? total : 1);
  }
}

// Threads per row: ~4 packets each, 128 to 1024.
unsigned RowThreads(int64_t vocab) {
  const int64_t want = (vocab + 4 * kVec - 1) / (4 * kVec);
  return static_cast<unsigned>(std::clamp<int64_t>((want + 31) / 32 * 32, 128, 1024));
}

// Rows N after checking logits [..., V] against the per-row tensors.
int64_t CheckRows(const Tensor& logits, const Tensor& targets, const char* what) {
  SL_CHECK_MSG(logits.rank() >= 1 && logits.dim(-1) > 0 && targets.dtype() == DType::kI32 &&
                   targets.numel() * logits.dim(-1) == logits.numel(),
               absl::StrCat(what, ": logits ", logits.ShapeString(), " targets ",
                            targets.ShapeString(), " ", DTypeName(targets.dtype())));
  SL_CHECK_MSG(targets.numel() < (int64_t{1} << 31), absl::StrCat(what, ": too many rows"));
  CheckCuda(logits, what);
  CheckCuda(targets, what);
  return targets.numel();
}

// Packets need logits and dlogits rows to share their offset from a 16-byte boundary.
bool SameOffsetFrom16(const Tensor& a, const Tensor& b) {
  return reinterpret_cast<uintptr_t>(a.data()) % 16 == reinterpret_cast<uintptr_t>(b.data()) % 16;
}

// launch(vectorized) when `vectorize`, else launch(scalar).
template <typename Launch, typename K>
void LaunchVectorizedIf(bool vectorize, Launch&& launch, K vectorized, K scalar) {
  launch(vectorize ? vectorized : scalar);
}

void CheckRowStat(const Tensor& stat, int64_t rows, const char* what) {
  SL_CHECK_MSG(stat.numel() == rows && stat.dtype() == DType::kF32,
               absl::StrCat(what, ": ", stat.ShapeString(), " ", DTypeName(stat.dtype()),
                            ", want [", rows, "] f32"));
  CheckCuda(stat, what);
}

}  // namespace
}  // namespace cuda

using cuda::DispatchFloat;
using cuda::Ptr;

void CudaBackend::CrossEntropyForward(const Tensor& losses, const Tensor& lse, const Tensor& logits,
                                      const Tensor& targets) {
  const int64_t rows = cuda::CheckRows(logits, targets, "CrossEntropyForward");
  cuda::CheckRowStat(losses, rows, "CrossEntropyForward losses");
  cuda::CheckRowStat(lse, rows, "CrossEntropyForward lse");
  if (rows == 0) return;
  const int64_t vocab = logits.dim(-1);
  DispatchFloat(logits.dtype(), [&](auto t) {
    using T = decltype(t);
    cuda::CrossEntropyForwardKernel<T>
        <<<static_cast<unsigned>(rows), cuda::RowThreads(vocab), 0, stream_>>>(
            losses.f32(), lse.f32(), Ptr<T>(logits), targets.i32(), vocab);
  });
  SL_CUDA_LAUNCH_CHECK();
}

void CudaBackend::CrossEntropyBackward(const Tensor& dlogits, const Tensor& logits,
                                       const Tensor& lse, const Tensor& targets, float dloss) {
  const int64_t rows = cuda::CheckRows(logits, targets, "CrossEntropyBackward");
  cuda::CheckRowStat(lse, rows, "CrossEntropyBackward lse");
  cuda::CheckLike(dlogits, logits, "CrossEntropyBackward dlogits");
  if (rows == 0) return;
  const int64_t vocab = logits.dim(-1);
  DispatchFloat(logits.dtype(), [&](auto t) {
    using T = decltype(t);
    cuda::LaunchVectorizedIf(
        cuda::SameOffsetFrom16(logits, dlogits),
        [&](auto kernel) {
          kernel<<<static_cast<unsigned>(rows), cuda::RowThreads(vocab), 0, stream_>>>(
              Ptr<T>(dlogits), Ptr<T>(logits), lse.f32(), targets.i32(), vocab, dloss);
        },
        cuda::CrossEntropyBackwardKernel<true, T>, cuda::CrossEntropyBackwardKernel<false, T>);
  });
  SL_CUDA_LAUNCH_CHECK();
}

void CudaBackend::CrossEntropyForwardBackward(const Tensor& losses, const Tensor& lse,
                                              const Tensor& dlogits, const Tensor& logits,
                                              const Tensor& targets, float loss_scale) {
  const int64_t rows = cuda::CheckRows(logits, targets, "CrossEntropyForwardBackward");
  cuda::CheckRowStat(losses, rows, "CrossEntropyForwardBackward losses");
  cuda::CheckRowStat(lse, rows, "CrossEntropyForwardBackward lse");
  cuda::CheckLike(dlogits, logits, "CrossEntropyForwardBackward dlogits");
  if (rows == 0) return;
  const int64_t vocab = logits.dim(-1);
  float* dloss = reinterpret_cast<float*>(loss_scratch_);
  cuda::MeanScaleKernel<<<1, 1024, 0, stream_>>>(dloss, targets.i32(), rows, loss_scale);
  SL_CUDA_LAUNCH_CHECK();
  DispatchFloat(logits.dtype(), [&](auto t) {
    using T = decltype(t);
    cuda::LaunchVectorizedIf(
        cuda::SameOffsetFrom16(logits, dlogits),
        [&](auto kernel) {
          kernel<<<static_cast<unsigned>(rows), cuda::RowThreads(vocab), 0, stream_>>>(
              losses.f32(), lse.f32(), Ptr<T>(dlogits), Ptr<T>(logits), targets.i32(), vocab,
              dloss);
        },
        cuda::CrossEntropyFusedKernel<true, T>, cuda::CrossEntropyFusedKernel<false, T>);
  });
  SL_CUDA_LAUNCH_CHECK();
}

}  // namespace sinklab

// Device helpers shared by the CUDA kernels of layers/cuda/ (and optim/cuda/): element
// loads/stores in fp32 arithmetic for every storage dtype, warp/block reductions, launch
// geometry and the launch check. Include only from .cu files.
#ifndef SINKLAB_LAYERS_CUDA_KERNEL_UTIL_CUH_
#define SINKLAB_LAYERS_CUDA_KERNEL_UTIL_CUH_

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

#include "absl/strings/str_cat.h"
#include "core/cuda_check.h"
#include "core/status.h"
#include "core/tensor.h"

namespace sinklab {
namespace cuda {

using bf16 = __nv_bfloat16;

constexpr int kBlock = 256;  // default threads per block

inline unsigned GridFor(int64_t n, int threads = kBlock) {
  const int64_t blocks = (n + threads - 1) / threads;
  return static_cast<unsigned>(blocks < 1 ? 1 : (blocks > (1 << 30) ? (1 << 30) : blocks));
}

// Every kernel launch is followed by this (launch-configuration errors surface here;
// asynchronous faults surface at the next synchronizing call, also checked).
#define SL_CUDA_LAUNCH_CHECK() SL_CUDA_CHECK(cudaGetLastError())

// fp32 arithmetic on any storage type.
__device__ __forceinline__ float ToF(float x) { return x; }
__device__ __forceinline__ float ToF(bf16 x) { return __bfloat162float(x); }
template <typename T>
__device__ __forceinline__ T FromF(float x);
template <>
__device__ __forceinline__ float FromF<float>(float x) { return x; }
template <>
__device__ __forceinline__ bf16 FromF<bf16>(float x) { return __float2bfloat16_rn(x); }

// Typed device pointer of a tensor (no dtype check beyond the caller's dispatch).
template <typename T>
inline T* Ptr(const Tensor& t) { return static_cast<T*>(t.data()); }

// Calls f(T{}) with T = float or bf16 per the tensor's dtype; other dtypes are a CHECK.
template <typename F>
void DispatchFloat(DType dtype, F&& f) {
  if (dtype == DType::kF32) {
    f(float{});
  } else if (dtype == DType::kBF16) {
    f(bf16{});
  } else {
    SL_CHECK_MSG(false, absl::StrCat("expected an f32 or bf16 tensor, got ", DTypeName(dtype)));
  }
}

inline void CheckCuda(const Tensor& t, const char* what) {
  SL_CHECK_MSG(t.empty() || t.device() == Device::kCuda,
               absl::StrCat(what, " must be a CUDA tensor"));
}

// t has like's element count and dtype and lives on the GPU (shapes may differ).
inline void CheckLike(const Tensor& t, const Tensor& like, const char* what) {
  SL_CHECK_MSG(t.numel() == like.numel() && t.dtype() == like.dtype(),
               absl::StrCat(what, ": ", t.ShapeString(), " ", DTypeName(t.dtype()), " vs ",
                            like.ShapeString(), " ", DTypeName(like.dtype())));
  CheckCuda(t, what);
}

// Typed pointer, or nullptr for an empty tensor (an output that is not needed).
template <typename T>
inline T* PtrOrNull(const Tensor& t) { return t.empty() ? nullptr : Ptr<T>(t); }

// Named barrier `id` (1-15; 0 is __syncthreads') of `threads` threads (a multiple of 32):
// Sync waits until that many have arrived, counting its own warp's; Arrive counts without
// waiting (PTX bar.sync / bar.arrive).
__device__ __forceinline__ void BarrierSync(int id, int threads) {
  asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}
__device__ __forceinline__ void BarrierArrive(int id, int threads) {
  asm volatile("bar.arrive %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}

template <typename T>
__device__ __forceinline__ T WarpSum(T v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float WarpMax(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Sum over the L lanes of an aligned lane group (L a power of two <= 32); every lane of the
// warp must call it (full-mask shuffles).
template <int L>
__device__ __forceinline__ float GroupSum(float v) {
#pragma unroll
  for (int o = L / 2; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Row loop of L-lane groups: calls body(row, lane_in_group, active) for every row, with all 32
// lanes of a warp in the same iteration (inactive lanes past the last row still run the
// group sums, so the shuffles stay convergent).
template <int L, typename Body>
__device__ __forceinline__ void ForEachRowGroup(int64_t rows, Body&& body) {
  constexpr int kGroups = 32 / L;  // rows per warp
  const int lane = threadIdx.x & 31;
  const int64_t warps = int64_t{gridDim.x} * blockDim.x / 32;
  for (int64_t base = (blockIdx.x * int64_t{blockDim.x} + threadIdx.x) / 32 * kGroups;
       base < rows; base += warps * kGroups) {
    const int64_t row = base + lane / L;
    body(row, lane % L, row < rows);
  }
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the
// result. Deterministic: a fixed tree. `shared` holds 32 values of T.
template <typename T>
__device__ T BlockSum(T v, T* shared) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  v = WarpSum(v);
  __syncthreads();
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  const int warps = blockDim.x >> 5;
  T total = lane < warps ? shared[lane] : T(0);
  return WarpSum(total);
}

__device__ __forceinline__ float BlockMax(float v, float* shared) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  v = WarpMax(v);
  __syncthreads();
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  const int warps = blockDim.x >> 5;
  float m = lane < warps ? shared[lane] : -INFINITY;
  return WarpMax(m);
}

// ---- Vectorized element access --------------------------------------------------------
// Elementwise and per-row kernels move kVec consecutive elements at a time: one 16-byte
// load/store of bf16 (two of fp32). They are templated on a width W in {1, kVec} and launch
// W = kVec only where CanVectorize holds (every base address 16-byte aligned and the
// row length / element count a multiple of kVec), so every packet stays aligned.
constexpr int kVec = 8;

__device__ __forceinline__ void LoadVec(const float* p, float (&v)[kVec]) {
  const float4 a = reinterpret_cast<const float4*>(p)[0];
  const float4 b = reinterpret_cast<const float4*>(p)[1];
  v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w, v[4] = b.x, v[5] = b.y, v[6] = b.z, v[7] = b.w;
}
__device__ __forceinline__ void LoadVec(const bf16* p, float (&v)[kVec]) {
  const uint4 raw = *reinterpret_cast<const uint4*>(p);
  const __nv_bfloat162* pairs = reinterpret_cast<const __nv_bfloat162*>(&raw);
#pragma unroll
  for (int k = 0; k < kVec / 2; ++k) {
    const float2 f = __bfloat1622float2(pairs[k]);
    v[2 * k] = f.x;
    v[2 * k + 1] = f.y;
  }
}
__device__ __forceinline__ void StoreVec(float* p, const float (&v)[kVec]) {
  reinterpret_cast<float4*>(p)[0] = make_float4(v[0], v[1], v[2], v[3]);
  reinterpret_cast<float4*>(p)[1] = make_float4(v[4], v[5], v[6], v[7]);
}
__device__ __forceinline__ void StoreVec(bf16* p, const float (&v)[kVec]) {
  uint4 raw;
  __nv_bfloat162* pairs = reinterpret_cast<__nv_bfloat162*>(&raw);
#pragma unroll
  for (int k = 0; k < kVec / 2; ++k) pairs[k] = __floats2bfloat162_rn(v[2 * k], v[2 * k + 1]);
  *reinterpret_cast<uint4*>(p) = raw;
}

// W consecutive elements in fp32 (W = kVec: one vector access; W = 1: scalar).
template <int W, typename T>
__device__ __forceinline__ void LoadF(const T* p, float (&v)[W]) {
  if constexpr (W == kVec) {
    LoadVec(p, v);
  } else {
#pragma unroll
    for (int k = 0; k < W; ++k) v[k] = ToF(p[k]);
  }
}
template <int W, typename T>
__device__ __forceinline__ void StoreF(T* p, const float (&v)[W]) {
  if constexpr (W == kVec) {
    StoreVec(p, v);
  } else {
#pragma unroll
    for (int k = 0; k < W; ++k) p[k] = FromF<T>(v[k]);
  }
}

inline bool Aligned16(const Tensor& t) {
  return t.empty() || reinterpret_cast<uintptr_t>(t.data()) % 16 == 0;
}
template <typename... Tensors>
bool AllAligned16(const Tensors&... tensors) {
  return (Aligned16(tensors) && ...);
}
// Whether packets of kVec elements may be used on rows of `length` elements: the length a
// multiple of kVec and every (non-empty) tensor aligned, so every packet is aligned.
template <typename... Tensors>
bool CanVectorize(int64_t length, const Tensors&... tensors) {
  return length % kVec == 0 && AllAligned16(tensors...);
}

// Lanes per row for rows of `dim` channels in packets of `width`: enough to cover the row
// in one packet each, a power of two in [4, 32].
inline int LanesPerRow(int64_t dim, int width) {
  int lanes = 4;
  while (lanes < 32 && int64_t{lanes} * width < dim) lanes *= 2;
  return lanes;
}

// f(std::integral_constant<int, L>{}) for L = LanesPerRow(dim, width).
// f(std::integral_constant<int, L>) with L = d / kVec lanes per head row: d = 64 or 128
// (one 8-channel packet per lane); `what` names the caller in the error for other d.
template <typename F>
void DispatchHeadLanes(int64_t d, const char* what, F&& f) {
  if (d == 64) {
    f(std::integral_constant<int, 8>{});
  } else if (d == 128) {
    f(std::integral_constant<int, 16>{});
  } else {
    SL_CHECK_MSG(false, absl::StrCat(what, ": head dim ", d, ", expected 64 or 128"));
  }
}

template <typename F>
void DispatchLanes(int64_t dim, int width, F&& f) {
  switch (LanesPerRow(dim, width)) {
    case 4:
      return f(std::integral_constant<int, 4>{});
    case 8:
      return f(std::integral_constant<int, 8>{});
    case 16:
      return f(std::integral_constant<int, 16>{});
    default:
      return f(std::integral_constant<int, 32>{});
  }
}

// Calls f(std::integral_constant<int, W>{}) with W = kVec when `vectorize`, else W = 1.
template <typename F>
void DispatchWidth(bool vectorize, F&& f) {
  if (vectorize) {
    f(std::integral_constant<int, kVec>{});
  } else {
    f(std::integral_constant<int, 1>{});
  }
}

// Grid-stride loop over [0, n) in packets: f(i, std::integral_constant<int, W>{}) for the
// aligned packets [i, i + W) of the body, then (W > 1) f(i, width 1) for each tail element.
// With W = kVec the tensors' base addresses must be 16-byte aligned (AllAligned16).
template <int W, typename F>
__device__ __forceinline__ void ForEachPacket(int64_t n, F&& f) {
  const int64_t first = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
  const int64_t stride = int64_t{gridDim.x} * blockDim.x;
  const int64_t body = n / W * W;
  for (int64_t i = first * W; i < body; i += stride * W) f(i, std::integral_constant<int, W>{});
  if constexpr (W > 1) {
    for (int64_t i = body + first; i < n; i += stride) f(i, std::integral_constant<int, 1>{});
  }
}

// 1 / (1 + e^-x) with the approximate division (2 ulp; an IEEE division is a multi-instruction
// sequence with a slow path, which made sigmoid attention 60% slower than softmax). For
// x -> -inf the denominator overflows and __fdividef gives 0, the limit.
__device__ __forceinline__ float Sigmoid(float x) { return __fdividef(1.0f, 1.0f + __expf(-x)); }

}  // namespace cuda
}  // namespace sinklab

#endif  // SINKLAB_LAYERS_CUDA_KERNEL_UTIL_CUH_

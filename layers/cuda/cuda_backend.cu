// CudaBackend: construction, the small helpers (fill, copy, convert, host copies, add,
// reductions) and the residual add. The layer kernels live in the other files of this folder.
#include <cstdlib>

#include "layers/cuda/cuda_backend.h"
#include "layers/cuda/cudnn_attention.h"
#include "layers/cuda/gemm_lt.h"
#include "layers/cuda/kernel_util.cuh"

namespace sinklab {
namespace cuda {
namespace {

// Packets of W elements (16-byte stores when W = kVec), then the tail.
template <int W, typename T>
__global__ void FillKernel(T* x, int64_t n, float value) {
  ForEachPacket<W>(n, [&](int64_t i, auto width) {
    constexpr int P = decltype(width)::value;
    float v[P];
#pragma unroll
    for (int k = 0; k < P; ++k) v[k] = value;
    StoreF<P>(x + i, v);
  });
}

template <typename TD, typename TS>
__global__ void ConvertKernel(TD* dst, const TS* src, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    dst[i] = FromF<TD>(ToF(src[i]));
  }
}

// out = a + b elementwise (out may alias a or b); fp32 arithmetic.
template <typename TO, typename TA, typename TB>
__global__ void AddKernel(TO* out, const TA* a, const TB* b, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    out[i] = FromF<TO>(ToF(a[i]) + ToF(b[i]));
  }
}

// Per-block partial sums in double, in a fixed order (deterministic); a second launch with
// one block reduces the partials.
constexpr int kSumBlocks = 512;

__global__ void SumPartialsKernel(double* partials, const float* x, int64_t n) {
  __shared__ double shared[32];
  double acc = 0;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    acc += x[i];
  }
  acc = BlockSum(acc, shared);
  if (threadIdx.x == 0) partials[blockIdx.x] = acc;
}

__global__ void CountPartialsKernel(double* partials, const int32_t* x, int64_t n) {
  __shared__ double shared[32];
  double acc = 0;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    acc += x[i] >= 0 ? 1.0 : 0.0;
  }
  acc = BlockSum(acc, shared);
  if (threadIdx.x == 0) partials[blockIdx.x] = acc;
}

// One block: *out = sum(losses) / #(targets >= 0) (0 when none), both sums in double over
// a fixed thread order. A training step's N is B x T (16K for llama_160m): one block is enough.
__global__ void MeanLossKernel(float* out, const float* losses, const int32_t* targets, int64_t n) {
  __shared__ double shared[32];
  double sum = 0, count = 0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
    sum += losses[i];
    count += targets[i] >= 0 ? 1.0 : 0.0;
  }
  sum = BlockSum(sum, shared);
  count = BlockSum(count, shared);
  if (threadIdx.x == 0) *out = count > 0 ? static_cast<float>(sum / count) : 0.0f;
}

// Per-block max |x| (NaNs ignored, as fmaxf does; 0 for no elements), stored as doubles.
template <typename T>
__global__ void MaxAbsPartialsKernel(double* partials, const T* x, int64_t n) {
  __shared__ float shared[32];
  float m = 0.0f;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    m = fmaxf(m, fabsf(ToF(x[i])));
  }
  m = BlockMax(m, shared);
  if (threadIdx.x == 0) partials[blockIdx.x] = m;
}

// *out = the sum of the n partials, or their max (take_max; partials are maxima >= 0).
__global__ void FinishPartialsKernel(double* out, const double* partials, int n,
                                     bool take_max) {
  __shared__ double sums[32];
  __shared__ float maxes[32];
  if (take_max) {
    float m = 0.0f;
    for (int i = threadIdx.x; i < n; i += blockDim.x) m = fmaxf(m, partials[i]);
    m = BlockMax(m, maxes);
    if (threadIdx.x == 0) *out = m;
  } else {
    double acc = 0;
    for (int i = threadIdx.x; i < n; i += blockDim.x) acc += partials[i];
    acc = BlockSum(acc, sums);
    if (threadIdx.x == 0) *out = acc;
  }
}

template <typename T>
void Add(cudaStream_t stream, const Tensor& out, const Tensor& a, const Tensor& b) {
  SL_CHECK_MSG(out.numel() == a.numel() && out.numel() == b.numel(),
               absl::StrCat("Add: ", out.ShapeString(), " = ", a.ShapeString(), " + ",
                            b.ShapeString()));
  const int64_t n = out.numel();
  DispatchFloat(a.dtype(), [&](auto ta) {
    using TA = decltype(ta);
    DispatchFloat(b.dtype(), [&](auto tb) {
      using TB = decltype(tb);
      AddKernel<T, TA, TB><<<GridFor(n), kBlock, 0, stream>>>(Ptr<T>(out), Ptr<TA>(a),
                                                               Ptr<TB>(b), n);
    });
  });
  SL_CUDA_LAUNCH_CHECK();
}

}  // namespace
}  // namespace cuda

using cuda::bf16;
using cuda::DispatchFloat;
using cuda::GridFor;
using cuda::kBlock;
using cuda::Ptr;

CudaBackend::CudaBackend() {
  SL_CUDA_CHECK(cudaStreamCreate(&stream_));
  gemm_ = std::make_unique<GemmLt>(stream_);
  SL_CUDA_CHECK(cudaMalloc(&scratch_, kScratchDoubles * sizeof(double)));
  SL_CUDA_CHECK(cudaMallocHost(&host_scratch_, kScratchDoubles * sizeof(double)));
  SL_CUDA_CHECK(cudaMalloc(&loss_scratch_, sizeof(float)));
  const char* graphs = std::getenv("SINKLAB_CUDA_GRAPHS");
  record_graphs_ = graphs == nullptr || std::string(graphs) != "0";
}

CudaBackend::~CudaBackend() {
  cudaStreamSynchronize(stream_);
  recordings_.clear();
#if SINKLAB_WITH_CUDNN
  cudnn_attention_.reset();  // its handle runs on stream_
#endif
  gemm_.reset();
  cudaFree(scratch_);
  cudaFree(loss_scratch_);
  cudaFree(workspace_);
  cudaFree(bias_apart_rows_);
  cudaFreeHost(host_scratch_);
  cudaStreamDestroy(stream_);
}

void* CudaBackend::Grown(void** buffer, size_t* capacity, size_t bytes) {
  if (bytes > *capacity) {
    SL_CUDA_CHECK(cudaFree(*buffer));  // synchronizes: no kernel still reads it
    *buffer = nullptr;
    SL_CUDA_CHECK(cudaMalloc(buffer, bytes));
    *capacity = bytes;
    ++buffers_generation_;
  }
  return *buffer;
}

void* CudaBackend::Workspace(size_t bytes) { return Grown(&workspace_, &workspace_bytes_, bytes); }

void CudaBackend::Synchronize() const { SL_CUDA_CHECK(cudaStreamSynchronize(stream_)); }

void CudaBackend::Fill(const Tensor& x, float value) {
  cuda::CheckCuda(x, "Fill");
  const int64_t n = x.numel();
  SL_CHECK_MSG(x.dtype() != DType::kI32 || value == 0.0f, "Fill of an i32 tensor supports 0 only");
  if (value == 0.0f) {  // all-zero bits in f32 and bf16
    SL_CUDA_CHECK(cudaMemsetAsync(x.data(), 0, x.nbytes(), stream_));
    return;
  }
  DispatchFloat(x.dtype(), [&](auto t) {
    using T = decltype(t);
    cuda::DispatchWidth(cuda::AllAligned16(x), [&](auto width) {
      constexpr int W = decltype(width)::value;
      cuda::FillKernel<W, T><<<GridFor(n / W + 1), kBlock, 0, stream_>>>(Ptr<T>(x), n, value);
    });
  });
  SL_CUDA_LAUNCH_CHECK();
}

void CudaBackend::Copy(const Tensor& dst, const Tensor& src) {
  SL_CHECK_MSG(dst.dtype() == src.dtype() && dst.numel() == src.numel(),
               absl::StrCat("Copy: ", dst.ShapeString(), " <- ", src.ShapeString()));
  SL_CUDA_CHECK(cudaMemcpyAsync(dst.data(), src.data(), src.nbytes(),
                                cudaMemcpyDeviceToDevice, stream_));
}

void CudaBackend::Convert(const Tensor& dst, const Tensor& src) {
  SL_CHECK_MSG(dst.numel() == src.numel(),
               absl::StrCat("Convert: ", dst.ShapeString(), " <- ", src.ShapeString()));
  if (dst.dtype() == src.dtype()) return Copy(dst, src);
  const int64_t n = src.numel();
  DispatchFloat(dst.dtype(), [&](auto td) {
    using TD = decltype(td);
    DispatchFloat(src.dtype(), [&](auto ts) {
      using TS = decltype(ts);
      cuda::ConvertKernel<TD, TS><<<GridFor(n), kBlock, 0, stream_>>>(Ptr<TD>(dst),
                                                                      Ptr<TS>(src), n);
    });
  });
  SL_CUDA_LAUNCH_CHECK();
}

void CudaBackend::CopyFromHost(const Tensor& dst, const void* host_src) {
  cuda::CheckCuda(dst, "CopyFromHost dst");
  // Synchronous: the host buffer may be reused as soon as this returns.
  SL_CUDA_CHECK(cudaMemcpyAsync(dst.data(), host_src, dst.nbytes(), cudaMemcpyHostToDevice,
                                stream_));
  Synchronize();
}

void CudaBackend::CopyToHost(void* host_dst, const Tensor& src) {
  cuda::CheckCuda(src, "CopyToHost src");
  SL_CUDA_CHECK(cudaMemcpyAsync(host_dst, src.data(), src.nbytes(), cudaMemcpyDeviceToHost,
                                stream_));
  Synchronize();
}

void CudaBackend::AddInto(const Tensor& dst, const Tensor& src) {
  DispatchFloat(dst.dtype(), [&](auto t) {
    using T = decltype(t);
    cuda::Add<T>(stream_, dst, dst, src);
  });
}

double CudaBackend::PartialsToHost(bool take_max) {
  cuda::FinishPartialsKernel<<<1, kBlock, 0, stream_>>>(scratch_ + cuda::kSumBlocks, scratch_,
                                                        cuda::kSumBlocks, take_max);
  SL_CUDA_LAUNCH_CHECK();
  SL_CUDA_CHECK(cudaMemcpyAsync(host_scratch_, scratch_ + cuda::kSumBlocks, sizeof(double),
                                cudaMemcpyDeviceToHost, stream_));
  Synchronize();
  return host_scratch_[0];
}

double CudaBackend::SumToHost(const Tensor& x) {
  SL_CHECK_MSG(x.dtype() == DType::kF32, "SumToHost needs an f32 tensor");
  cuda::SumPartialsKernel<<<cuda::kSumBlocks, kBlock, 0, stream_>>>(scratch_, x.f32(),
                                                                     x.numel());
  SL_CUDA_LAUNCH_CHECK();
  return PartialsToHost(/*take_max=*/false);
}

int64_t CudaBackend::CountNonNegative(const Tensor& x) {
  SL_CHECK_MSG(x.dtype() == DType::kI32, "CountNonNegative needs an i32 tensor");
  cuda::CountPartialsKernel<<<cuda::kSumBlocks, kBlock, 0, stream_>>>(scratch_, x.i32(),
                                                                       x.numel());
  SL_CUDA_LAUNCH_CHECK();
  return static_cast<int64_t>(PartialsToHost(/*take_max=*/false));
}

void CudaBackend::MeanLoss(const Tensor& out, const Tensor& losses, const Tensor& targets) {
  SL_CHECK_MSG(out.numel() == 1 && out.dtype() == DType::kF32 && losses.dtype() == DType::kF32 &&
                   targets.dtype() == DType::kI32 && losses.numel() == targets.numel(),
               "MeanLoss needs out [1] f32, losses [N] f32 and targets [N] i32");
  cuda::MeanLossKernel<<<1, 1024, 0, stream_>>>(out.f32(), losses.f32(), targets.i32(),
                                                losses.numel());
  SL_CUDA_LAUNCH_CHECK();
}

double CudaBackend::MaxAbsToHost(const Tensor& x) {
  cuda::CheckCuda(x, "MaxAbsToHost");
  DispatchFloat(x.dtype(), [&](auto t) {
    using T = decltype(t);
    cuda::MaxAbsPartialsKernel<T><<<cuda::kSumBlocks, kBlock, 0, stream_>>>(scratch_, Ptr<T>(x),
                                                                             x.numel());
  });
  SL_CUDA_LAUNCH_CHECK();
  return PartialsToHost(/*take_max=*/true);
}

}  // namespace sinklab

#include "optim/cuda/optim_kernels.h"

#include <cmath>

#include "layers/cuda/kernel_util.cuh"

namespace sinklab {
namespace cuda_optim {
namespace {

using cuda::bf16;
using cuda::FromF;
using cuda::kBlock;
using cuda::Ptr;
using cuda::ToF;

constexpr int kPartials = 256;  // blocks of every reduction (fixed: deterministic)

#define SL_GRID_STRIDE(i, n)                                                   \
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < (n); \
       i += int64_t{gridDim.x} * blockDim.x)

__device__ void WritePartial(double acc, double* partials) {
  __shared__ double shared[32];
  acc = cuda::BlockSum(acc, shared);
  if (threadIdx.x == 0) partials[blockIdx.x] = acc;
}

__global__ void ReducePartials(double* out, const double* partials, int n) {
  __shared__ double shared[32];
  double acc = 0;
  for (int i = threadIdx.x; i < n; i += blockDim.x) acc += partials[i];
  acc = cuda::BlockSum(acc, shared);
  if (threadIdx.x == 0) *out = acc;
}

template <typename T>
__global__ void SumSquaresKernel(const T* x, int64_t n, double* partials) {
  double acc = 0;
  SL_GRID_STRIDE(i, n) {
    const double v = ToF(x[i]);
    acc += v * v;
  }
  WritePartial(acc, partials);
}

__global__ void ScaleKernel(float* x, int64_t n, float factor) {
  SL_GRID_STRIDE(i, n) x[i] *= factor;
}

template <typename TD, typename TS>
__global__ void ConvertKernel(TD* dst, const TS* src, int64_t n) {
  SL_GRID_STRIDE(i, n) dst[i] = FromF<TD>(ToF(src[i]));
}

template <typename T>
__global__ void InverseNormKernel(T* x, int64_t n, const double* sum_sq, float eps) {
  const float factor = static_cast<float>(1.0 / (sqrt(*sum_sq) + eps));
  SL_GRID_STRIDE(i, n) x[i] = FromF<T>(ToF(x[i]) * factor);
}

void Reduce(DeviceSums& sums, int slot) {
  ReducePartials<<<1, kBlock>>>(sums.slot(slot), sums.partials(), kPartials);
  SL_CUDA_LAUNCH_CHECK();
}

void CheckF32(const Tensor& t, const char* what) {
  SL_CHECK_MSG(t.device() == Device::kCuda && t.dtype() == DType::kF32,
               absl::StrCat(what, " must be an fp32 CUDA tensor"));
}

}  // namespace

DeviceSums::DeviceSums(int slots) : slots_(slots) {
  SL_CUDA_CHECK(cudaMalloc(&slots_device_, sizeof(double) * (slots > 0 ? slots : 1)));
  SL_CUDA_CHECK(cudaMalloc(&partials_, sizeof(double) * kPartials));
  SL_CUDA_CHECK(cudaMemset(slots_device_, 0, sizeof(double) * (slots > 0 ? slots : 1)));
}

DeviceSums::~DeviceSums() {
  cudaFree(slots_device_);
  cudaFree(partials_);
}

double* DeviceSums::slot(int i) const {
  SL_CHECK_MSG(i >= 0 && i < slots_, absl::StrCat("DeviceSums slot ", i, " of ", slots_));
  return slots_device_ + i;
}

std::vector<double> DeviceSums::ToHost() const {
  std::vector<double> host(slots_);
  SL_CUDA_CHECK(cudaMemcpy(host.data(), slots_device_, sizeof(double) * slots_,
                           cudaMemcpyDeviceToHost));
  return host;
}

void SumOfSquares(const Tensor& x, DeviceSums& sums, int slot) {
  CheckF32(x, "SumOfSquares");
  SumOfSquaresAny(x, sums, slot);
}

void SumOfSquaresAny(const Tensor& x, DeviceSums& sums, int slot) {
  cuda::DispatchFloat(x.dtype(), [&](auto t) {
    using T = decltype(t);
    SumSquaresKernel<T><<<kPartials, kBlock>>>(Ptr<T>(x), x.numel(), sums.partials());
  });
  SL_CUDA_LAUNCH_CHECK();
  Reduce(sums, slot);
}

void SumSlots(DeviceSums& sums, int n, int out) {
  SL_CHECK(n <= out && out < sums.slots());
  ReducePartials<<<1, kBlock>>>(sums.slot(out), sums.slot(0), n);
  SL_CUDA_LAUNCH_CHECK();
}

void Scale(const Tensor& x, float factor) {
  CheckF32(x, "Scale");
  ScaleKernel<<<cuda::GridFor(x.numel()), kBlock>>>(x.f32(), x.numel(), factor);
  SL_CUDA_LAUNCH_CHECK();
}

void Zero(const Tensor& x) { SL_CUDA_CHECK(cudaMemsetAsync(x.data(), 0, x.nbytes(), 0)); }

void Convert(const Tensor& dst, const Tensor& src) {
  SL_CHECK_MSG(dst.numel() == src.numel(), "Convert: numel mismatch");
  cuda::DispatchFloat(dst.dtype(), [&](auto td) {
    using TD = decltype(td);
    cuda::DispatchFloat(src.dtype(), [&](auto ts) {
      using TS = decltype(ts);
      ConvertKernel<TD, TS><<<cuda::GridFor(src.numel()), kBlock>>>(Ptr<TD>(dst), Ptr<TS>(src),
                                                                   src.numel());
    });
  });
  SL_CUDA_LAUNCH_CHECK();
}

void ScaleByInverseNorm(const Tensor& x, const double* sum_sq, float eps) {
  cuda::DispatchFloat(x.dtype(), [&](auto t) {
    using T = decltype(t);
    InverseNormKernel<T><<<cuda::GridFor(x.numel()), kBlock>>>(Ptr<T>(x), x.numel(), sum_sq,
                                                               eps);
  });
  SL_CUDA_LAUNCH_CHECK();
}

}  // namespace cuda_optim
}  // namespace sinklab

#include "optim/clip.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>

#include "absl/strings/str_cat.h"
#include "core/status.h"
#include "optim/matrix_ops.h"
#if SINKLAB_WITH_CUDA
#include "optim/cuda/optim_kernels.h"
#endif

namespace sinklab {
namespace {

constexpr int64_t kParallelMinElements = 1 << 14;

bool OnCuda(const std::vector<Parameter*>& params) {
  return !params.empty() && params[0]->grad.device() == Device::kCuda;
}

#if SINKLAB_WITH_CUDA
// Reduction slots for the GPU norm: one per parameter plus the total. Created at the first
// call (the trainer's first step) and kept: no allocation in later steps.
cuda_optim::DeviceSums& NormSlots(size_t params) {
  static std::unique_ptr<cuda_optim::DeviceSums> sums;
  if (sums == nullptr || sums->slots() < static_cast<int>(params) + 1) {
    sums = std::make_unique<cuda_optim::DeviceSums>(static_cast<int>(params) + 1);
  }
  return *sums;
}

double GradSumOfSquaresCuda(const std::vector<Parameter*>& params) {
  cuda_optim::DeviceSums& sums = NormSlots(params.size());
  const int n = static_cast<int>(params.size());
  for (int i = 0; i < n; ++i) cuda_optim::SumOfSquares(params[i]->grad, sums, i);
  cuda_optim::SumSlots(sums, n, n);
  return sums.ToHost()[n];  // the one host read
}
#endif

// The grad as fp32 on the CPU.
float* CpuGrad(const Parameter& param) {
  SL_CHECK_MSG(param.grad.device() == Device::kCpu,
               absl::StrCat(param.name, ": gradients of one list must share a device"));
  return param.grad.f32();
}

}  // namespace

double GradSumOfSquares(const std::vector<Parameter*>& params) {
#if SINKLAB_WITH_CUDA
  if (OnCuda(params)) return GradSumOfSquaresCuda(params);
#endif
  double sum = 0.0;
  for (const Parameter* param : params) {
    sum += SumOfSquaresCpu(CpuGrad(*param), param->grad.numel());
  }
  return sum;
}

float GlobalGradNorm(const std::vector<Parameter*>& params) {
  return static_cast<float>(std::sqrt(GradSumOfSquares(params)));
}

float ClipGradNorm(const std::vector<Parameter*>& params, float max_norm) {
  const float norm = GlobalGradNorm(params);
  if (max_norm > 0.0f && std::isfinite(norm) && norm > max_norm) {
    // torch.nn.utils.clip_grad_norm_: clip_coef = max_norm / (total_norm + 1e-6).
    ScaleGrads(params, static_cast<float>(static_cast<double>(max_norm) / (norm + 1e-6)));
  }
  return norm;
}

void ScaleGrads(const std::vector<Parameter*>& params, float factor) {
  for (const Parameter* param : params) {
#if SINKLAB_WITH_CUDA
    if (param->grad.device() == Device::kCuda) {
      cuda_optim::Scale(param->grad, factor);
      continue;
    }
#endif
    float* grad = CpuGrad(*param);
    const int64_t n = param->grad.numel();
#pragma omp parallel for schedule(static) if (n >= kParallelMinElements)
    for (int64_t i = 0; i < n; ++i) grad[i] *= factor;
  }
}

void ZeroGrads(const std::vector<Parameter*>& params) {
  for (const Parameter* param : params) {
#if SINKLAB_WITH_CUDA
    if (param->grad.device() == Device::kCuda) {
      cuda_optim::Zero(param->grad);
      continue;
    }
#endif
    float* grad = CpuGrad(*param);
    std::fill(grad, grad + param->grad.numel(), 0.0f);
  }
}

}  // namespace sinklab

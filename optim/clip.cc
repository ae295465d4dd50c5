#include "optim/clip.h"

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "absl/strings/str_cat.h"
#include "core/status.h"
#include "optim/matrix_ops.h"

namespace sinklab {
namespace {

constexpr int64_t kParallelMinElements = 1 << 14;

// The grad as fp32 on the CPU (the only backend of these helpers so far).
float* CpuGrad(const Parameter& param) {
  SL_CHECK_MSG(param.grad.device() == Device::kCpu,
               absl::StrCat(param.name, ": gradient helpers have only the CPU path so far"));
  return param.grad.f32();
}

}  // namespace

float GlobalGradNorm(const std::vector<Parameter*>& params) {
  double sum = 0.0;
  for (const Parameter* param : params) {
    sum += SumOfSquaresCpu(CpuGrad(*param), param->grad.numel());
  }
  return static_cast<float>(std::sqrt(sum));
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
    float* grad = CpuGrad(*param);
    const int64_t n = param->grad.numel();
#pragma omp parallel for schedule(static) if (n >= kParallelMinElements)
    for (int64_t i = 0; i < n; ++i) grad[i] *= factor;
  }
}

void ZeroGrads(const std::vector<Parameter*>& params) {
  for (const Parameter* param : params) {
    float* grad = CpuGrad(*param);
    std::fill(grad, grad + param->grad.numel(), 0.0f);
  }
}

}  // namespace sinklab


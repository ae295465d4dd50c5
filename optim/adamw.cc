#include "optim/adamw.h"

#include <cmath>
#include <set>
#include <string>

#include "absl/strings/str_cat.h"
#include "core/status.h"
#include "optim/matrix_ops.h"
#include "optim/param_groups.h"
#if SINKLAB_WITH_CUDA
#include "optim/cuda/multi_tensor_gpu.h"
#endif

namespace sinklab {
namespace {

// A zero fp32 tensor with `like`'s shape, from `arena`.
Tensor AllocateLike(const Tensor& like, Arena* arena) {
  int64_t shape[Tensor::kMaxRank];
  for (int i = 0; i < like.rank(); ++i) shape[i] = like.dim(i);
  return arena->Allocate(DType::kF32, shape, like.rank());
}

// Per-parameter decay from its kind (the single-group default).
std::vector<float> KindWeightDecays(const std::vector<Parameter*>& params,
                                    const OptimConfig& config) {
  std::vector<float> decays;
  for (const Parameter* param : params) {
    SL_CHECK(param != nullptr);
    decays.push_back(WeightDecayFor(param->kind, config));
  }
  return decays;
}

// One AdamW update of n elements (formula in adamw.h). step_size = lr / (1 - b1^t),
// bias_correction2_sqrt = sqrt(1 - b2^t), decay_factor = 1 - lr * wd. Returns
// sum (p_new - p_old)^2 when `record` is set, else 0.
double AdamWUpdateCpu(float* param, const float* grad, float* m, float* v, int64_t n, float beta1,
                      float beta2, float eps, float step_size, float bias_correction2_sqrt,
                      float decay_factor, bool record) {
  return ParallelChunkedSum(n, [&](int64_t begin, int64_t end) {
    double sum = 0.0;
    for (int64_t i = begin; i < end; ++i) {
      const float g = grad[i];
      const float m_new = beta1 * m[i] + (1.0f - beta1) * g;
      const float v_new = beta2 * v[i] + (1.0f - beta2) * g * g;
      m[i] = m_new;
      v[i] = v_new;
      const float denom = std::sqrt(v_new) / bias_correction2_sqrt + eps;
      const float old = param[i];
      param[i] = old * decay_factor - step_size * (m_new / denom);
      if (record) {
        const double delta = static_cast<double>(param[i]) - old;
        sum += delta * delta;
      }
    }
    return sum;
  });
}

}  // namespace

AdamW::AdamW(const OptimConfig& config, std::vector<Parameter*> params, Arena* state_arena)
    : AdamW(config, params, KindWeightDecays(params, config), state_arena) {}

AdamW::AdamW(const OptimConfig& config, std::vector<Parameter*> params,
             std::vector<float> weight_decays, Arena* state_arena)
    : beta1_(config.beta1()),
      beta2_(config.beta2()),
      eps_(config.eps()),
      params_(std::move(params)),
      weight_decays_(std::move(weight_decays)) {
  SL_CHECK(state_arena != nullptr);
  SL_CHECK_MSG(
      weight_decays_.size() == params_.size(),
      absl::StrCat(weight_decays_.size(), " weight decays for ", params_.size(), " parameters"));
  SL_CHECK_MSG(beta1_ >= 0.0f && beta1_ < 1.0f, absl::StrCat("optim.beta1=", beta1_));
  SL_CHECK_MSG(beta2_ >= 0.0f && beta2_ < 1.0f, absl::StrCat("optim.beta2=", beta2_));
  SL_CHECK_MSG(eps_ > 0.0f, absl::StrCat("optim.eps=", eps_));
  std::set<std::string> names;
  for (Parameter* param : params_) {
    CheckOptimizerParameter(param, *state_arena, "AdamW", &names);
    m_.push_back(AllocateLike(param->master, state_arena));
    v_.push_back(AllocateLike(param->master, state_arena));
  }
  update_sum_squares_.assign(params_.size(), 0.0);
  if (state_arena->device() == Device::kCuda) {
#if SINKLAB_WITH_CUDA
    multi_tensor_ = std::make_shared<cuda_optim::MultiTensorAdamW>(params_, m_, v_, weight_decays_,
                                                                   state_arena);
#else
    SL_CHECK_MSG(false, "AdamW: CUDA parameters in a build without CUDA");
#endif
  }
}

void AdamW::Step(float lr, int64_t step) {
  SL_CHECK_MSG(step >= 1, absl::StrCat("AdamW steps are 1-based, got ", step));
  const double bias_correction1 = 1.0 - std::pow(static_cast<double>(beta1_), step);
  const double bias_correction2 = 1.0 - std::pow(static_cast<double>(beta2_), step);
  const float step_size = static_cast<float>(lr / bias_correction1);
  const float bias_correction2_sqrt = static_cast<float>(std::sqrt(bias_correction2));
  if (multi_tensor_ != nullptr) {
#if SINKLAB_WITH_CUDA
    multi_tensor_->Step(beta1_, beta2_, eps_, lr, step_size, bias_correction2_sqrt, grad_scale_,
                        record_stats_, stream_);
    if (record_stats_) multi_tensor_->CopyUpdateSumSquares(&update_sum_squares_);
#endif
    step_ = step;
    return;
  }
  SL_CHECK_MSG(grad_scale_ == nullptr, "AdamW: a device grad scale for CPU parameters");
  SL_CHECK_MSG(stream_ == nullptr, "AdamW: a CUDA stream for CPU parameters");
  for (size_t i = 0; i < params_.size(); ++i) {
    Parameter& param = *params_[i];
    const float decay_factor = 1.0f - lr * weight_decays_[i];
    update_sum_squares_[i] = AdamWUpdateCpu(
        param.master.f32(), param.grad.f32(), m_[i].f32(), v_[i].f32(), param.master.numel(),
        beta1_, beta2_, eps_, step_size, bias_correction2_sqrt, decay_factor, record_stats_);
  }
  step_ = step;
}

std::vector<StateTensor> AdamW::StateTensors() const {
  std::vector<StateTensor> state;
  for (size_t i = 0; i < params_.size(); ++i) {
    state.push_back({absl::StrCat("adamw.m.", params_[i]->name), m_[i]});
    state.push_back({absl::StrCat("adamw.v.", params_[i]->name), v_[i]});
  }
  return state;
}

}  // namespace sinklab

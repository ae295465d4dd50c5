#include "optim/muon.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/status.h"
#include "optim/matrix_ops.h"
#if SINKLAB_WITH_CUDA
#include "optim/cuda/multi_tensor_gpu.h"
#endif

namespace sinklab {

float MuonScale(MuonConfig::Scaling scaling, int64_t rows, int64_t cols) {
  switch (scaling) {
    case MuonConfig::ORIGINAL:
      // muon.py: max(1, grad.size(-2) / grad.size(-1)) ** 0.5.
      return static_cast<float>(
          std::sqrt(std::max(1.0, static_cast<double>(rows) / static_cast<double>(cols))));
    case MuonConfig::MOONSHOT:
      // Liu et al. 2025 ("consistent update RMS"): 0.2 * sqrt(max(A, B)) for A x B.
      return static_cast<float>(0.2 * std::sqrt(static_cast<double>(std::max(rows, cols))));
  }
  SL_CHECK_MSG(false, absl::StrCat("unknown optim.muon.scaling ", scaling));
  return 0.0f;
}

Muon::Muon(const MuonConfig& config, std::vector<Parameter*> params,
           std::vector<float> weight_decays, Arena* state_arena, MuonSharding sharding)
    : beta_(config.momentum()),
      nesterov_(config.nesterov()),
      ns_steps_(config.ns_steps()),
      params_(std::move(params)),
      weight_decays_(std::move(weight_decays)) {
  SL_CHECK(state_arena != nullptr);
  SL_CHECK_MSG(beta_ >= 0.0f && beta_ < 1.0f, absl::StrCat("optim.muon.momentum=", beta_));
  SL_CHECK_MSG(ns_steps_ >= 1, absl::StrCat("optim.muon.ns_steps=", ns_steps_));
  SL_CHECK_MSG(
      weight_decays_.size() == params_.size(),
      absl::StrCat(weight_decays_.size(), " weight decays for ", params_.size(), " parameters"));
  std::set<std::string> names;
  int64_t max_numel = 1, max_small_dim = 1, max_rows = 1, max_cols = 1;
  for (Parameter* param : params_) {
    CheckOptimizerParameter(param, *state_arena, "Muon", &names);
    SL_CHECK_MSG(param->master.rank() == 2,
                 absl::StrCat(param->name, " ", param->master.ShapeString(),
                              ": Muon updates 2-D matrices only"));
    const int64_t rows = param->master.dim(0), cols = param->master.dim(1);
    scales_.push_back(MuonScale(config.scaling(), rows, cols));
    m_.push_back(state_arena->Allocate(DType::kF32, {rows, cols}));
    max_numel = std::max(max_numel, rows * cols);
    max_small_dim = std::max(max_small_dim, std::min(rows, cols));
    max_rows = std::max(max_rows, rows);
    max_cols = std::max(max_cols, cols);
  }
  update_sum_squares_.assign(params_.size(), 0.0);
  if (state_arena->device() == Device::kCuda) {
#if SINKLAB_WITH_CUDA
    multi_tensor_ = std::make_shared<cuda_optim::MultiTensorMuon>(
        params_, m_, weight_decays_, scales_, beta_, nesterov_, ns_steps_, state_arena,
        std::move(sharding));
#else
    SL_CHECK_MSG(false, "Muon: CUDA parameters in a build without CUDA");
#endif
  } else {
    SL_CHECK_MSG(sharding.world == 1 && !sharding.all_gather,
                 "Muon: sharding is for CUDA parameters (the CPU has DistributedMuon)");
    update_ = state_arena->Allocate(DType::kF32, {max_numel});
    workspace_ = NewtonSchulzWorkspace(max_numel, max_small_dim, state_arena);
  }
  sigma_max_.assign(params_.size(), 0.0);
  power_u_.assign(max_rows, 0.0);
  power_v_.assign(max_cols, 0.0);
}

void Muon::Step(float lr, int64_t step) {
  SL_CHECK_MSG(step >= 1, absl::StrCat("Muon steps are 1-based, got ", step));
  if (multi_tensor_ != nullptr) {
#if SINKLAB_WITH_CUDA
    const cuda_optim::MultiTensorMuon::MatrixStats stats = [this](int k, double sum,
                                                                  const float* x) {
      update_sum_squares_[k] = sum;
      sigma_max_[k] =
          LargestSingularValueEstimate(x, params_[k]->master.dim(0), params_[k]->master.dim(1),
                                       kSigmaMaxIterations, power_u_.data(), power_v_.data());
    };
    multi_tensor_->Step(lr, grad_scale_, record_stats_ ? &stats : nullptr);
#endif
    step_ = step;
    return;
  }
  SL_CHECK_MSG(grad_scale_ == nullptr, "Muon: a device grad scale for CPU parameters");
  const float beta = beta_;
  const float one_minus_beta = 1.0f - beta_;
  const bool nesterov = nesterov_;
  for (size_t k = 0; k < params_.size(); ++k) {
    Parameter& param = *params_[k];
    const int64_t rows = param.master.dim(0), cols = param.master.dim(1);
    const int64_t n = rows * cols;
    const float* grad = param.grad.f32();
    float* m = m_[k].f32();
    float* u = update_.f32();
    // Momentum and the Nesterov look-ahead (formulas in muon.h).
    ParallelChunkedSum(n, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        const float g = grad[i];
        const float m_new = beta * m[i] + one_minus_beta * g;
        m[i] = m_new;
        u[i] = nesterov ? one_minus_beta * g + beta * m_new : m_new;
      }
      return 0.0;
    });
    const Tensor update(u, DType::kF32, Device::kCpu, {rows, cols});
    NewtonSchulz5(update, ns_steps_, workspace_, update);  // u -> X in place
    const float decay_factor = 1.0f - lr * weight_decays_[k];
    const float step_size = lr * scales_[k];
    float* p = param.master.f32();
    const bool record = record_stats_;
    update_sum_squares_[k] = ParallelChunkedSum(n, [&](int64_t begin, int64_t end) {
      double sum = 0.0;
      for (int64_t i = begin; i < end; ++i) {
        const float old = p[i];
        p[i] = old * decay_factor - step_size * u[i];
        if (record) {
          const double delta = static_cast<double>(p[i]) - old;
          sum += delta * delta;
        }
      }
      return sum;
    });
    if (record) {
      sigma_max_[k] = LargestSingularValueEstimate(u, rows, cols, kSigmaMaxIterations,
                                                   power_u_.data(), power_v_.data());
    }
  }
  step_ = step;
}

std::vector<StateTensor> Muon::StateTensors() const {
  std::vector<StateTensor> state;
  for (size_t k = 0; k < params_.size(); ++k) {
    state.push_back({absl::StrCat("muon.m.", params_[k]->name), m_[k]});
  }
  return state;
}

}  // namespace sinklab

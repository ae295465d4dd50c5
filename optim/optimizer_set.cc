#include "optim/optimizer_set.h"

#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/status.h"
#include "optim/clip.h"
#if SINKLAB_WITH_CUDA
#include "optim/cuda/multi_tensor_gpu.h"
#include "optim/cuda/optim_kernels.h"
#endif

namespace sinklab {

absl::StatusOr<std::unique_ptr<OptimizerSet>> OptimizerSet::Create(
    const OptimConfig& config, const std::vector<Parameter*>& params, Arena* state_arena,
    MuonSharding muon_sharding) {
  SL_CHECK(state_arena != nullptr);
  std::unique_ptr<OptimizerSet> set(new OptimizerSet());
  SL_ASSIGN_OR_RETURN(set->groups_, RouteParamGroups(params, config));
  set->params_ = params;
  set->adamw_lr_ = config.lr();
  set->muon_lr_ = MuonLearningRate(config);
  // One parameter list per rule, groups concatenated in order.
  std::vector<Parameter*> adamw_params, muon_params;
  std::vector<float> adamw_decays, muon_decays;
  for (const ParamGroup& group : set->groups_) {
    const bool muon = group.optimizer == MUON;
    // Every group of a rule shares the rule's lr (one Step lr per optimizer).
    SL_CHECK(group.lr == (muon ? set->muon_lr_ : set->adamw_lr_));
    std::vector<Parameter*>& list = muon ? muon_params : adamw_params;
    std::vector<float>& decays = muon ? muon_decays : adamw_decays;
    GroupSpan span;
    span.begin = list.size();
    for (Parameter* param : group.params) {
      list.push_back(param);
      decays.push_back(group.weight_decay);
    }
    span.end = list.size();
    set->spans_.push_back(span);
  }
  if (!adamw_params.empty()) {
    set->adamw_ = std::make_unique<AdamW>(config, std::move(adamw_params), std::move(adamw_decays),
                                          state_arena);
  }
  if (!muon_params.empty()) {
    set->muon_ =
        std::make_unique<Muon>(config.muon(), std::move(muon_params), std::move(muon_decays),
                               state_arena, std::move(muon_sharding));
  }
  if (state_arena->device() == Device::kCuda && !params.empty()) {
#if SINKLAB_WITH_CUDA
    set->grad_norm_ = std::make_shared<cuda_optim::MultiTensorGradNorm>(params, state_arena);
    if (set->adamw_ != nullptr && set->muon_ != nullptr) {
      set->adamw_stream_ = std::make_shared<cuda_optim::SideStream>();
      set->adamw_->set_stream(set->adamw_stream_->stream());
    }
#else
    SL_CHECK_MSG(false, "OptimizerSet: CUDA parameters in a build without CUDA");
#endif
  }
  return set;
}

void OptimizerSet::ClipGradients(float max_norm, const Tensor& norm_out) {
  SL_CHECK_MSG(norm_out.dtype() == DType::kF32 && norm_out.numel() == 1,
               "ClipGradients: the norm's slot must be one f32");
  if (grad_norm_ == nullptr) {
    SL_CHECK_MSG(norm_out.device() == Device::kCpu, "ClipGradients: CPU norm, device slot");
    norm_out.f32()[0] = ClipGradNorm(params_, max_norm);
    return;
  }
#if SINKLAB_WITH_CUDA
  SL_CHECK_MSG(norm_out.device() == Device::kCuda, "ClipGradients: GPU norm, host slot");
  grad_norm_->Compute(max_norm, norm_out.f32());
  clip_pending_ = true;
#endif
}

float OptimizerSet::ClipGradients(float max_norm) {
  if (grad_norm_ == nullptr) return ClipGradNorm(params_, max_norm);
#if SINKLAB_WITH_CUDA
  const float norm = grad_norm_->Compute(max_norm);
  clip_pending_ = true;
  return norm;
#else
  return 0.0f;
#endif
}

void OptimizerSet::Step(float schedule_factor, int64_t step) {
  const float* grad_scale = nullptr;
#if SINKLAB_WITH_CUDA
  if (clip_pending_) grad_scale = grad_norm_->clip_factor();
#endif
  for (Optimizer* optimizer :
       {static_cast<Optimizer*>(adamw_.get()), static_cast<Optimizer*>(muon_.get())}) {
    if (optimizer != nullptr) optimizer->set_grad_scale(grad_scale);
  }
#if SINKLAB_WITH_CUDA
  // AdamW's stream starts after everything queued so far (the backward pass, the norm).
  if (adamw_stream_ != nullptr) adamw_stream_->Fork();
#endif
  if (adamw_ != nullptr) adamw_->Step(adamw_lr_ * schedule_factor, step);
  if (muon_ != nullptr) muon_->Step(muon_lr_ * schedule_factor, step);
#if SINKLAB_WITH_CUDA
  // The default stream (and through it the backend's next forward) waits for AdamW.
  if (adamw_stream_ != nullptr) adamw_stream_->Join();
#endif
  for (Optimizer* optimizer :
       {static_cast<Optimizer*>(adamw_.get()), static_cast<Optimizer*>(muon_.get())}) {
    if (optimizer != nullptr) optimizer->set_grad_scale(nullptr);
  }
  clip_pending_ = false;
  RefreshCopies(/*all=*/false);
  step_ = step;
  last_step_recorded_ = record_stats_;
}

void OptimizerSet::RefreshComputeCopies() { RefreshCopies(/*all=*/true); }

void OptimizerSet::RefreshCopies(bool all) {
  for (const ParamGroup& group : groups_) {
    const Optimizer* optimizer = group.optimizer == MUON
                                     ? static_cast<const Optimizer*>(muon_.get())
                                     : static_cast<const Optimizer*>(adamw_.get());
    if (!all && optimizer != nullptr && optimizer->writes_compute_copies()) continue;
    for (Parameter* param : group.params) {
      if (param->compute.empty() || param->compute.data() == param->master.data()) continue;
#if SINKLAB_WITH_CUDA
      cuda_optim::Convert(param->compute, param->master);
#else
      SL_CHECK_MSG(false, absl::StrCat(param->name, ": a separate compute copy needs CUDA"));
#endif
    }
  }
}

std::vector<StateTensor> OptimizerSet::StateTensors() const {
  std::vector<StateTensor> state;
  for (const Optimizer* optimizer :
       {static_cast<const Optimizer*>(adamw_.get()), static_cast<const Optimizer*>(muon_.get())}) {
    if (optimizer == nullptr) continue;
    for (StateTensor& tensor : optimizer->StateTensors()) state.push_back(std::move(tensor));
  }
  return state;
}

std::vector<std::string> OptimizerSet::Describe(int line_width) const {
  return DescribeParamGroups(groups_, line_width);
}

void OptimizerSet::set_step(int64_t step) {
  step_ = step;
  if (adamw_ != nullptr) adamw_->set_step(step);
  if (muon_ != nullptr) muon_->set_step(step);
}

void OptimizerSet::set_record_stats(bool record) {
  record_stats_ = record;
  if (adamw_ != nullptr) adamw_->set_record_stats(record);
  if (muon_ != nullptr) muon_->set_record_stats(record);
}

std::map<std::string, double> OptimizerSet::LastUpdateStats() const {
  std::map<std::string, double> stats;
  if (!last_step_recorded_) return stats;
  for (size_t g = 0; g < groups_.size(); ++g) {
    const ParamGroup& group = groups_[g];
    const Optimizer& optimizer = group.optimizer == MUON ? static_cast<const Optimizer&>(*muon_)
                                                         : static_cast<const Optimizer&>(*adamw_);
    double sum = 0.0;
    int64_t count = 0;
    for (size_t i = spans_[g].begin; i < spans_[g].end; ++i) {
      sum += optimizer.last_update_sum_squares()[i];
      count += group.params[i - spans_[g].begin]->master.numel();
    }
    stats[absl::StrCat("update_rms/", group.name)] =
        count > 0 ? std::sqrt(sum / static_cast<double>(count)) : 0.0;
  }
  if (muon_ != nullptr) {
    for (size_t i = 0; i < muon_->params().size(); ++i) {
      stats[absl::StrCat("muon_sigma_max/", muon_->params()[i]->name)] = muon_->last_sigma_max()[i];
    }
  }
  return stats;
}

}  // namespace sinklab

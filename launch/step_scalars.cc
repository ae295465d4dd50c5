#include "launch/step_scalars.h"

#include "absl/strings/str_cat.h"
#include "core/status.h"

namespace sinklab {

StepScalars::StepScalars(Arena* arena, int capacity, int accum)
    : capacity_(capacity),
      accum_(accum),
      losses_(arena->Allocate(DType::kF32, {capacity, accum})),
      norms_(arena->Allocate(DType::kF32, {capacity})),
      host_losses_(static_cast<size_t>(capacity) * accum),
      host_norms_(capacity) {
  SL_CHECK(capacity > 0 && accum > 0);
}

void StepScalars::Begin(int64_t step) {
  SL_CHECK_MSG(!full(), "StepScalars: read the pending steps first");
  if (pending_ == 0) first_step_ = step;
  SL_CHECK_MSG(step == first_step_ + pending_,
               absl::StrCat("StepScalars: step ", step, " after ", first_step_ + pending_ - 1));
  ++pending_;
}

Tensor StepScalars::LossSlot(int micro) const {
  SL_CHECK(pending_ > 0 && micro >= 0 && micro < accum_);
  return losses_.Slice0(pending_ - 1, pending_).Reshaped({accum_}).Slice0(micro, micro + 1);
}

Tensor StepScalars::NormSlot() const {
  SL_CHECK(pending_ > 0);
  return norms_.Slice0(pending_ - 1, pending_);
}

std::vector<StepScalar> StepScalars::Read(Communicator& comm) {
  const int n = pending_;
  std::vector<StepScalar> steps(n);
  if (n == 0) return steps;
  CopyTensorToHost(host_losses_.data(), losses_.Slice0(0, n));
  CopyTensorToHost(host_norms_.data(), norms_.Slice0(0, n));
  std::vector<double> means(n);
  for (int i = 0; i < n; ++i) {
    double sum = 0;  // each micro-batch's float loss, added in double in order
    for (int m = 0; m < accum_; ++m) sum += host_losses_[static_cast<size_t>(i) * accum_ + m];
    means[i] = sum / accum_;
  }
  comm.AllReduceSum(means.data(), n);
  for (int i = 0; i < n; ++i) {
    steps[i] = {first_step_ + i, static_cast<float>(means[i] / comm.world_size()), host_norms_[i]};
  }
  pending_ = 0;
  return steps;
}

}  // namespace sinklab

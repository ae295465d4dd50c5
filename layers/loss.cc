#include "layers/loss.h"

#include <algorithm>

namespace sinklab {

CrossEntropyLoss::CrossEntropyLoss(Backend* backend, Arena* arena, int64_t max_rows)
    : backend_(backend),
      losses_(arena->Allocate(DType::kF32, {max_rows})),
      lse_(arena->Allocate(DType::kF32, {max_rows})) {}

float CrossEntropyLoss::Forward(const Tensor& logits, const Tensor& targets) {
  const int64_t n = targets.numel();
  backend_->CrossEntropyForward(losses_.Slice0(0, n), lse_.Slice0(0, n), logits, targets);
  return MeanLoss(targets);
}

float CrossEntropyLoss::MeanLoss(const Tensor& targets) {
  count_ = backend_->CountNonNegative(targets);
  if (count_ == 0) return 0.0f;
  return static_cast<float>(backend_->SumToHost(losses_.Slice0(0, targets.numel())) /
                            static_cast<double>(count_));
}

void CrossEntropyLoss::Backward(const Tensor& dlogits, const Tensor& logits, const Tensor& targets,
                                float loss_scale) {
  const int64_t n = targets.numel();
  const float dloss = loss_scale / static_cast<float>(std::max<int64_t>(count_, 1));
  backend_->CrossEntropyBackward(dlogits, logits, lse_.Slice0(0, n), targets, dloss);
}

void CrossEntropyLoss::ForwardBackward(const Tensor& dlogits, const Tensor& logits,
                                       const Tensor& targets, float loss_scale) {
  const int64_t n = targets.numel();
  backend_->CrossEntropyForwardBackward(losses_.Slice0(0, n), lse_.Slice0(0, n), dlogits, logits,
                                        targets, loss_scale);
}

}  // namespace sinklab

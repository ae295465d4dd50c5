#include "layers/loss.h"

#include <algorithm>

namespace sinklab {

CrossEntropyLoss::CrossEntropyLoss(Backend* backend, Arena* arena, int64_t max_rows)
    : backend_(backend),
      losses_(arena->Allocate(DType::kF32, {max_rows})),
      lse_(arena->Allocate(DType::kF32, {max_rows})),
      mean_(arena->Allocate(DType::kF32, {1})) {}

float CrossEntropyLoss::Forward(const Tensor& logits, const Tensor& targets) {
  const int64_t n = targets.numel();
  backend_->CrossEntropyForward(losses_.Slice0(0, n), lse_.Slice0(0, n), logits, targets);
  count_ = backend_->CountNonNegative(targets);  // Backward's
  return MeanLoss(targets);
}

void CrossEntropyLoss::WriteMeanLoss(const Tensor& out, const Tensor& targets) {
  backend_->MeanLoss(out, losses_.Slice0(0, targets.numel()), targets);
}

float CrossEntropyLoss::MeanLoss(const Tensor& targets) {
  WriteMeanLoss(mean_, targets);
  float mean = 0.0f;
  backend_->CopyToHost(&mean, mean_);
  return mean;
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

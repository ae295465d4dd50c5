// CrossEntropyLoss: mean over positions with target >= 0 of -log softmax(logits)[target].
#ifndef SINKLAB_LAYERS_LOSS_H_
#define SINKLAB_LAYERS_LOSS_H_

#include <cstdint>

#include "core/arena.h"
#include "layers/backend.h"

namespace sinklab {

class CrossEntropyLoss {
 public:
  CrossEntropyLoss(Backend* backend, Arena* arena, int64_t max_rows);

  // logits [N, V], targets [N] i32 (-1 = no loss). Returns the mean loss over the counted
  // positions (0 when none). Caches per-position losses [N] and log-sum-exps [N] (f32) and
  // the count.
  float Forward(const Tensor& logits, const Tensor& targets);
  // dlogits [N, V] = d(loss_scale * mean loss)/dlogits, OVERWRITTEN (may alias logits).
  void Backward(const Tensor& dlogits, const Tensor& logits, const Tensor& targets,
                float loss_scale);
  // Training's Forward + Backward in one pass over the logits (Backend::
  // CrossEntropyForwardBackward), with no host read: WriteMeanLoss or MeanLoss give the loss.
  void ForwardBackward(const Tensor& dlogits, const Tensor& logits, const Tensor& targets,
                       float loss_scale);
  // out [1] f32 (the backend's device) = the mean loss of the last (Forward)Backward, with
  // no host read. targets: that call's.
  void WriteMeanLoss(const Tensor& out, const Tensor& targets);
  // The same, read to the host (synchronizes).
  float MeanLoss(const Tensor& targets);

  // The last Forward's per-position losses [N] (0 on ignored positions).
  const Tensor& losses() const { return losses_; }

 private:
  Backend* backend_;
  Tensor losses_, lse_;  // [max_rows] f32
  Tensor mean_;          // [1] f32: MeanLoss's
  int64_t count_ = 0;
};

}  // namespace sinklab

#endif  // SINKLAB_LAYERS_LOSS_H_

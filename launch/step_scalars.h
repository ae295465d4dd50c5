// The per-step scalars of training (each micro-batch's mean loss, the gradient norm) kept on
// the model's device until a log, evaluation, statistics or checkpoint step reads them all
// at once: the steps between run with no host read (issue 4: no host synchronization
// except where a logged scalar is read).
#ifndef SINKLAB_LAUNCH_STEP_SCALARS_H_
#define SINKLAB_LAUNCH_STEP_SCALARS_H_

#include <cstdint>
#include <vector>

#include "core/arena.h"
#include "core/comm.h"
#include "core/tensor.h"

namespace sinklab {

// One read step's scalars: the loss (mean over the global batch) and the norm before
// clipping, as the trainer reported them per step.
struct StepScalar {
  int64_t step = 0;  // 1-based
  float loss = 0.0f, grad_norm = 0.0f;
};

class StepScalars {
 public:
  // Slots for `capacity` steps of `accum` micro-batches, from `arena` (before it is sealed),
  // on the arena's device.
  StepScalars(Arena* arena, int capacity, int accum);

  // Where step `step` (1-based; the pending steps are consecutive) writes micro-batch
  // `micro`'s mean loss and its norm: [1] f32 each (Model::WriteMeanLoss,
  // DistributedOptimizer::ReduceAndClipGradients). Begin claims the step's slots.
  void Begin(int64_t step);
  Tensor LossSlot(int micro) const;
  Tensor NormSlot() const;

  int pending() const { return pending_; }
  bool full() const { return pending_ == capacity_; }

  // Collective (every rank, at the same steps): reads the pending steps' scalars (one host
  // read), averages each step's loss over its micro-batches (in double) and over ranks,
  // and forgets them.
  std::vector<StepScalar> Read(Communicator& comm);

 private:
  int capacity_, accum_;
  Tensor losses_;  // [capacity, accum] f32
  Tensor norms_;   // [capacity] f32
  int64_t first_step_ = 0;
  int pending_ = 0;
  std::vector<float> host_losses_, host_norms_;
};

}  // namespace sinklab

#endif  // SINKLAB_LAUNCH_STEP_SCALARS_H_

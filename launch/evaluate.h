// Held-out evaluation: mean cross-entropy over the first `batches` val batches (in order,
// so every evaluation of a run sees the same tokens).
#ifndef SINKLAB_LAUNCH_EVALUATE_H_
#define SINKLAB_LAUNCH_EVALUATE_H_

#include "core/tensor.h"
#include "data/loader.h"
#include "layers/model.h"

namespace sinklab {

// inputs/targets: scratch [model.batch(), model.seq_len()] int32 buffers. Does not touch
// the parameter gradients. Returns the mean loss over the batches (nats per token).
float EvaluateLoss(Model& model, const Loader& val, int batches, Tensor inputs, Tensor targets);

}  // namespace sinklab

#endif  // SINKLAB_LAUNCH_EVALUATE_H_

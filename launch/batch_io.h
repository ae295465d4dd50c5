// Loader batches into the model's batch tensors on any device: written in place on the CPU,
// staged through host memory and queued to a GPU without a host wait (QueueTensorFromHost:
// ordered with the model's stream, which reads them).
#ifndef SINKLAB_LAUNCH_BATCH_IO_H_
#define SINKLAB_LAUNCH_BATCH_IO_H_

#include <cstdint>

#include "core/tensor.h"
#include "data/loader.h"

namespace sinklab {

// Loader::GetBatch(step, micro_step, inputs.dim(0), ...) into inputs/targets [B, T] i32.
void LoadTrainBatch(Loader& loader, int64_t step, int micro_step, const Tensor& inputs,
                    const Tensor& targets);
// Loader::GetEvalBatch(batch, inputs.dim(0), ...) into inputs/targets [B, T] i32.
void LoadEvalBatch(const Loader& loader, int64_t batch, const Tensor& inputs,
                   const Tensor& targets);

}  // namespace sinklab

#endif  // SINKLAB_LAUNCH_BATCH_IO_H_

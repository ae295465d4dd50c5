// Data-parallel pieces of the training loop that are not the optimizer's
// (launch/distributed_optimizer.h): the held-out loss split across ranks, and the planted
// failure that tests use to check that one rank's error ends the whole job.
#ifndef SINKLAB_LAUNCH_DISTRIBUTED_H_
#define SINKLAB_LAUNCH_DISTRIBUTED_H_

#include <cstdint>

#include "absl/status/status.h"
#include "core/comm.h"
#include "core/tensor.h"
#include "data/loader.h"
#include "layers/model.h"

namespace sinklab {

// Collective: the mean loss over eval batches 0 .. batches - 1 of `val` (a Loader made with
// rank 0 of world 1, so batch b is the same sequences on every rank and with any number of
// ranks), rank r computing batches r, r + N, ...; the sum goes through an all-reduce. On one
// rank this is EvaluateLoss (launch/evaluate.h) exactly. inputs/targets are the model's
// batch scratch.
float EvaluateLossAcrossRanks(Model& model, const Loader& val, int batches, Tensor inputs,
                              Tensor targets, Communicator& comm);

// Test hook, like SINKLAB_CRASH_POINT of launch/checkpoint.cc: with SINKLAB_FAIL_RANK=<rank>
// in the environment, that rank fails when optimizer step SINKLAB_FAIL_STEP (1-based, default
// 1) starts, as SINKLAB_FAIL_HOW says: "status" (default; an InternalError returned up to
// main), "check" (an SL_CHECK failure, i.e. abort()) or "exception" (an uncaught
// std::runtime_error). The message names the rank and the step. OK otherwise.
absl::Status PlantedFailureForTests(int rank, int64_t step);

}  // namespace sinklab

#endif  // SINKLAB_LAUNCH_DISTRIBUTED_H_

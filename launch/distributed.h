// Data-parallel pieces of the training loop that are not the optimizer's
// (launch/distributed_optimizer.h): each rank's GPU, the gradient buckets' layout, the
// held-out loss split across ranks, and the planted failure that tests use to check that one
// rank's error ends the whole job.
#ifndef SINKLAB_LAUNCH_DISTRIBUTED_H_
#define SINKLAB_LAUNCH_DISTRIBUTED_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/comm.h"
#include "core/device.h"
#include "core/tensor.h"
#include "data/loader.h"
#include "layers/model.h"

namespace sinklab {

// Under an MPI launcher on the GPU: makes GPU GpuForLocalRank(LocalRank(), visible GPUs)
// this process's CUDA device, and says so once on stderr ("sinklab rank R/N: GPU g of n,
// local rank l"; every rank, whatever the log quietness). Call it before anything touches
// the GPU (backend, arena). Returns the device; 0 without doing anything for the CPU, for a
// process not started by a launcher, or in a build without CUDA.
absl::StatusOr<int> UseGpuOfLocalRank(Device device, const Communicator& world);

// A slice of one gradient inside a bucket.
struct BucketSegment {
  int tensor = 0;             // index in the sizes given to PlanBuckets
  int64_t tensor_offset = 0;  // first element of the slice within that tensor
  int64_t bucket_offset = 0;  // where the slice goes in the bucket
  int64_t count = 0;          // elements
};

// One all-reduce: `size` elements made of `segments`, which fill [0, size) in order.
struct Bucket {
  int64_t size = 0;
  std::vector<BucketSegment> segments;
};

// The tensors of `sizes` (elements; in the order they are reduced, which for gradients is
// reverse parameter order: the order the backward pass finishes them) laid end to end and
// cut into buckets of bucket_elements (>= 1), the last one shorter; a tensor may straddle
// buckets, empty tensors get no segment. The same cut as the CPU path's FlatView, so both
// reduce the same sums. A hook that knows when each gradient is final could reduce bucket i
// as soon as the last tensor of its segments is.
std::vector<Bucket> PlanBuckets(const std::vector<int64_t>& sizes, int64_t bucket_elements);

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

#include "launch/distributed.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/status.h"
#include "launch/batch_io.h"

#if SINKLAB_WITH_CUDA
#include <cuda_runtime.h>

#include "core/cuda_check.h"
#endif

namespace sinklab {

absl::StatusOr<int> UseGpuOfLocalRank(Device device, const Communicator& world) {
  if (device != Device::kCuda || !StartedByMpiLauncher()) return 0;
#if SINKLAB_WITH_CUDA
  int device_count = 0;
  if (cudaGetDeviceCount(&device_count) != cudaSuccess || device_count < 1) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "rank %d: --device=cuda but no CUDA device is visible", world.rank()));
  }
  const int local_rank = LocalRank();
  const int gpu = GpuForLocalRank(local_rank, device_count);
  SL_CUDA_CHECK(cudaSetDevice(gpu));
  std::fprintf(stderr, "sinklab rank %d/%d: GPU %d of %d, local rank %d%s\n", world.rank(),
               world.world_size(), gpu, device_count, local_rank,
               local_rank >= device_count ? " (more ranks than GPUs on this host: NCCL refuses "
                                            "two ranks of one communicator on one GPU)"
                                          : "");
  std::fflush(stderr);
  return gpu;
#else
  return 0;
#endif
}

std::vector<Bucket> PlanBuckets(const std::vector<int64_t>& sizes, int64_t bucket_elements) {
  SL_CHECK_MSG(bucket_elements >= 1, absl::StrCat("bucket_elements=", bucket_elements));
  std::vector<Bucket> buckets;
  for (int tensor = 0; tensor < static_cast<int>(sizes.size()); ++tensor) {
    SL_CHECK_MSG(sizes[tensor] >= 0, absl::StrCat("sizes[", tensor, "]=", sizes[tensor]));
    for (int64_t done = 0; done < sizes[tensor];) {
      if (buckets.empty() || buckets.back().size == bucket_elements) buckets.emplace_back();
      Bucket& bucket = buckets.back();
      const int64_t count = std::min(sizes[tensor] - done, bucket_elements - bucket.size);
      bucket.segments.push_back(BucketSegment{tensor, done, bucket.size, count});
      bucket.size += count;
      done += count;
    }
  }
  return buckets;
}

float EvaluateLossAcrossRanks(Model& model, const Loader& val, int batches, Tensor inputs,
                              Tensor targets, Communicator& comm) {
  double sum = 0;
  for (int b = comm.rank(); b < batches; b += comm.world_size()) {
    LoadEvalBatch(val, b, inputs, targets);
    sum += model.Forward(inputs, targets);
  }
  comm.AllReduceSum(&sum, 1);
  return batches > 0 ? static_cast<float>(sum / batches) : 0.0f;
}

absl::Status PlantedFailureForTests(int rank, int64_t step) {
  const char* fail_rank = std::getenv("SINKLAB_FAIL_RANK");
  int wanted_rank = -1;
  if (fail_rank == nullptr || !absl::SimpleAtoi(fail_rank, &wanted_rank) || wanted_rank != rank) {
    return absl::OkStatus();
  }
  const char* fail_step = std::getenv("SINKLAB_FAIL_STEP");
  int64_t wanted_step = 1;
  if (fail_step != nullptr && !absl::SimpleAtoi(fail_step, &wanted_step)) wanted_step = 1;
  if (step != wanted_step) return absl::OkStatus();
  const char* how_env = std::getenv("SINKLAB_FAIL_HOW");
  const std::string how = how_env == nullptr ? "status" : how_env;
  const std::string message = absl::StrFormat(
      "planted failure on rank %d at step %d (SINKLAB_FAIL_RANK, %s)", rank, step, how);
  if (how == "check") SL_CHECK_MSG(false, message);
  if (how == "exception") throw std::runtime_error(message);
  return absl::InternalError(message);
}

}  // namespace sinklab

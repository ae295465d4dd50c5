#include "launch/distributed.h"

#include <cstdlib>
#include <stdexcept>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "core/status.h"
#include "launch/batch_io.h"

namespace sinklab {

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

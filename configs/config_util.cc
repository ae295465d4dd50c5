#include "configs/config_util.h"

#include "absl/strings/str_cat.h"
#include "core/status.h"

namespace sinklab {

int HeadDim(const ModelConfig& model) {
  SL_CHECK_MSG(model.n_heads() > 0 && model.d_model() % model.n_heads() == 0,
               absl::StrCat("d_model=", model.d_model(), " n_heads=", model.n_heads(),
                            " (was the config validated?)"));
  return model.d_model() / model.n_heads();
}

int KvHeads(const ModelConfig& model) {
  return model.n_kv_heads() == 0 ? model.n_heads() : model.n_kv_heads();
}

int MicroBatchSize(const TrainConfig& train, int world_size) {
  SL_CHECK_MSG(world_size >= 1, absl::StrCat("world_size=", world_size));
  return train.micro_batch_size() == 0 ? train.batch_size() / world_size
                                       : train.micro_batch_size();
}

int GradAccumSteps(const TrainConfig& train, int world_size) {
  const int per_pass = MicroBatchSize(train, world_size) * world_size;
  SL_CHECK_MSG(per_pass > 0 && train.batch_size() % per_pass == 0,
               absl::StrCat("batch_size=", train.batch_size(), " micro_batch_size=",
                            train.micro_batch_size(), " world_size=", world_size,
                            " (was ValidateForWorldSize called?)"));
  return train.batch_size() / per_pass;
}

absl::Status ValidateForWorldSize(const Config& config, int world_size) {
  SL_CHECK_MSG(world_size >= 1, absl::StrCat("world_size=", world_size));
  const TrainConfig& train = config.train();
  const int micro = train.micro_batch_size();
  if (micro == 0 && train.batch_size() % world_size != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "train.batch_size=", train.batch_size(), " is not divisible by the world size ",
        world_size, " (train.micro_batch_size=0 means batch_size / world_size per rank); "
        "the global batch does not depend on the number of ranks, so choose a batch_size "
        "that is a multiple of ", world_size));
  }
  if (micro > 0 && train.batch_size() % (micro * world_size) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "train.batch_size=", train.batch_size(), " is not divisible by world size ",
        world_size, " x train.micro_batch_size=", micro, " (the global batch is ",
        "world size x micro-batch x accumulation steps)"));
  }
  if (!(config.distributed().bucket_mb() > 0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "distributed.bucket_mb=", config.distributed().bucket_mb(), " must be > 0"));
  }
  return absl::OkStatus();
}

std::vector<float> SinkEpsList(const StatsConfig& stats) {
  if (stats.eps_size() == 0) return {kDefaultSinkEps};
  return std::vector<float>(stats.eps().begin(), stats.eps().end());
}

}  // namespace sinklab

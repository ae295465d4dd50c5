// Effective values of config fields whose stored value has a special meaning (0 = "same as",
// empty = "the default list"). Every consumer calls these instead of re-deriving the rule.
#ifndef SINKLAB_CONFIGS_CONFIG_UTIL_H_
#define SINKLAB_CONFIGS_CONFIG_UTIL_H_

#include <vector>

#include "absl/status/status.h"
#include "configs/sinklab.pb.h"

namespace sinklab {

// Sink^eps threshold used when stats.eps is empty (Gu et al. 2025 report eps = 0.3).
inline constexpr float kDefaultSinkEps = 0.3f;

// Per-head dimension d_h = d_model / n_heads. The config must be valid (ValidateConfig).
int HeadDim(const ModelConfig& model);

// Key/value heads of grouped-query attention: n_kv_heads, or n_heads when it is 0.
int KvHeads(const ModelConfig& model);

// Sequences per forward/backward pass on one of `world_size` data-parallel ranks:
// micro_batch_size, or batch_size / world_size when it is 0.
int MicroBatchSize(const TrainConfig& train, int world_size = 1);

// Forward/backward passes per optimizer step on each rank:
// batch_size / (world_size * MicroBatchSize). The config must fit the world size
// (ValidateForWorldSize).
int GradAccumSteps(const TrainConfig& train, int world_size = 1);

// InvalidArgument, naming the fields, when `config` cannot train on `world_size` ranks:
// world_size * micro-batch must divide train.batch_size (the global batch is fixed by the
// config), and distributed.bucket_mb must be > 0.
absl::Status ValidateForWorldSize(const Config& config, int world_size);

// The Sink^eps thresholds: stats.eps, or {kDefaultSinkEps} when it is empty.
std::vector<float> SinkEpsList(const StatsConfig& stats);

}  // namespace sinklab

#endif  // SINKLAB_CONFIGS_CONFIG_UTIL_H_

// The statistics of saved weights (the `sinklab stats` verb): the same StatsRunner as the
// trainer's stats steps, on the held-out data the weights' config names.
#ifndef SINKLAB_LAUNCH_STATS_ON_WEIGHTS_H_
#define SINKLAB_LAUNCH_STATS_ON_WEIGHTS_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "core/device.h"

namespace sinklab {

// Loads `weights_path` (model.safetensors; its config with `overrides`, --set fragments,
// merged over it), computes the statistics on the first stats.batch_size held-out sequences
// and writes one stats.jsonl line ("step": null) to `out_path` (atomically; parent folders
// created); prints a one-line summary on stdout. The model is built with a micro-batch of
// min(stats.batch_size, the training micro-batch), which does not change the statistics.
absl::Status RunStatsOnWeights(const std::string& weights_path,
                               const std::vector<std::string>& overrides,
                               const std::string& out_path, Device device = Device::kCpu);

}  // namespace sinklab

#endif  // SINKLAB_LAUNCH_STATS_ON_WEIGHTS_H_

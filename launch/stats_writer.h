// Where StatsReport goes: one JSON line per stats step in <run_dir>/stats/stats.jsonl with
// every per-layer / per-head array (so plots need no re-run), the scalars for the step's
// metrics.jsonl line, and a one-line summary for the console.
//
// stats.jsonl line (keys in this order; arrays nested [layer][head]; non-finite -> null):
//   step, samples, window, seq_len, prefix_tokens, bias_keys, eps [e],
//   sink {"<eps>": Sink^eps}, sink_ratio {"<eps>": [l][h]}, first_token_mass [l][h],
//   prefix_mass / virtual_mass / bias_mass [l][h] (only when they apply),
//   entropy [l][h], top3 [l][3] of {sample, position, channel, value} (position counts the
//   prefix tokens), median_abs [l], top1_ratio [l], kurtosis [l],
//   linear_input_max {name: value}, token0_norm_ratio [l], value_norm_ratio [l][kv head],
//   gate_mean [l] (only with a gate).
#ifndef SINKLAB_LAUNCH_STATS_WRITER_H_
#define SINKLAB_LAUNCH_STATS_WRITER_H_

#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "core/metrics_jsonl.h"
#include "launch/stats_runner.h"

namespace sinklab {

// The metrics.jsonl scalars, in order: "sink_<eps>" per eps (e.g. "sink_0.3"),
// "first_token_mass", "prefix_mass" / "virtual_mass" / "bias_mass" (when they apply),
// "max_top1_ratio", "max_kurtosis", "max_linear_input_abs", "mean_entropy",
// "token0_norm_ratio_max", "gate_mean" (with a gate). Also the TensorBoard scalar names.
std::vector<std::pair<std::string, double>> StatsScalars(const StatsReport& report);

// Adds StatsScalars(report) to `record` (the step's metrics.jsonl line); returns it.
JsonRecord& AddStatsScalars(const StatsReport& report, JsonRecord& record);

// The stats.jsonl line (no newline) described above; step < 0 writes "step": null (stats
// of saved weights).
std::string StatsLineJson(int64_t step, const StatsReport& report);

// "Sink^0.3 0.812 | first-token mass 0.431 | top1/median 512 | kurtosis 35.2 | ..."
std::string FormatStatsSummary(const StatsReport& report);

// Appends stats.jsonl lines, flushed per line.
class StatsWriter {
 public:
  // Creates <run_dir>/stats/ and opens stats.jsonl for appending.
  absl::Status Open(const std::string& run_dir);
  absl::Status Append(int64_t step, const StatsReport& report);
  bool is_open() const { return writer_.is_open(); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  JsonlWriter writer_;
};

}  // namespace sinklab

#endif  // SINKLAB_LAUNCH_STATS_WRITER_H_

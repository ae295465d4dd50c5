// The progress line printed every train.log_every steps.
#ifndef SINKLAB_LAUNCH_PROGRESS_H_
#define SINKLAB_LAUNCH_PROGRESS_H_

#include <cstdint>
#include <string>

namespace sinklab {

struct ProgressInfo {
  int64_t step;          // 0-based step just finished
  int64_t total_steps;
  float loss;            // mean training loss of the step
  float lr;
  float grad_norm;       // before clipping
  double tokens_per_s;   // over the last logging interval
  double eta_s;          // estimated seconds to the end
};

// "step   10/300 | loss 3.2145 | lr 1.00e-03 | gnorm 0.85 | 12.3k tok/s | ETA 1m23s"
std::string FormatProgress(const ProgressInfo& info);
// 83 -> "1m23s", 3725 -> "1h02m", 5 -> "5s".
std::string FormatDuration(double seconds);

}  // namespace sinklab

#endif  // SINKLAB_LAUNCH_PROGRESS_H_

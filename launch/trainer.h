// Trainer: owns everything of one training run (data, backend, model, optimizer, run
// directory) and runs the loop: accumulate micro-batch gradients, clip, schedule, AdamW; log
// progress and metrics.jsonl; evaluate the held-out loss; save the final weights.
#ifndef SINKLAB_LAUNCH_TRAINER_H_
#define SINKLAB_LAUNCH_TRAINER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "configs/sinklab.pb.h"
#include "core/device.h"

namespace sinklab {

struct TrainOptions {
  Device device = Device::kCpu;
  bool print_progress = true;  // progress lines on stdout
  // Continue this run directory from its newest loadable checkpoint (the config is the
  // caller's: RunTrain reads <resume_dir>/config.textproto).
  std::string resume_dir;
  // Stop (with a checkpoint) once this many steps are done in total; 0: run to train.steps.
  int64_t stop_at_step = 0;
};

struct TrainResult {
  std::string run_dir;
  int64_t first_step = 0;          // 0, or the checkpoint's step when resuming
  std::vector<float> step_losses;  // mean training loss of every step this call ran
  float final_val_loss = 0;        // of the last evaluation (NaN if none ran)
};

// Trains `config` (already validated) and returns the per-step losses. All the run's
// buffers are allocated before the first step; the loop itself allocates nothing.
absl::StatusOr<TrainResult> Train(const Config& config, const TrainOptions& options);

}  // namespace sinklab

#endif  // SINKLAB_LAUNCH_TRAINER_H_

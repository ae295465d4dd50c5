// Trainer: owns everything of one training run (data, backend, model, optimizer, run
// directory) and runs the loop: accumulate micro-batch gradients, clip, schedule, AdamW; log
// progress and metrics.jsonl; evaluate the held-out loss; save the final weights. Alone, or
// as one rank of a data-parallel group (TrainOptions::comm; launch/distributed_optimizer.h).
#ifndef SINKLAB_LAUNCH_TRAINER_H_
#define SINKLAB_LAUNCH_TRAINER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "configs/sinklab.pb.h"
#include "core/comm.h"
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
  // The data-parallel group training this run (not owned; DESIGN.md section 8); null: this
  // process alone. Every rank calls Train with the same config and options; rank 0 alone
  // writes the run directory, logs, statistics and checkpoints, and every rank reads the
  // checkpoint it resumes from (so resume_dir must be visible to all of them).
  Communicator* comm = nullptr;
  // Train into exactly this directory (created when missing; a sweep names it after its
  // labels) instead of a new <train.run_root>/<name>[_k]. Ignored when resume_dir is set.
  std::string run_dir;
  // Put before every progress line (e.g. a sweep run's label).
  std::string progress_prefix;
};

struct TrainResult {
  std::string run_dir;
  int64_t first_step = 0;          // 0, or the checkpoint's step when resuming
  std::vector<float> step_losses;  // mean training loss of every step this call ran (over
                                   // the global batch: the same on every rank)
  float final_val_loss = 0;        // of the last evaluation (NaN if none ran)
};

// Trains `config` (already validated) and returns the per-step losses. All the run's
// buffers are allocated before the first step; the loop itself allocates nothing.
absl::StatusOr<TrainResult> Train(const Config& config, const TrainOptions& options);

}  // namespace sinklab

#endif  // SINKLAB_LAUNCH_TRAINER_H_

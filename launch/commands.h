// The CLI verbs as functions of plain structs (main.cc fills them from flags; tests call
// them directly).
#ifndef SINKLAB_LAUNCH_COMMANDS_H_
#define SINKLAB_LAUNCH_COMMANDS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "core/comm.h"

namespace sinklab {

struct TrainCommand {
  std::vector<std::string> args;       // [CONFIG] or empty (embedded tiny config)
  std::vector<std::string> overrides;  // --set fragments
  std::string device = "auto";
  bool quiet = false;
  std::string resume;        // RUN_DIR to continue (its config.textproto, + overrides)
  int64_t stop_at_step = 0;  // stop (with a checkpoint) after this many steps; 0: never
  Communicator* comm = nullptr;  // the job's ranks (data parallel); null: this process alone
};

struct SweepCommand {
  std::vector<std::string> args;       // [SWEEP.textproto]
  std::vector<std::string> overrides;  // --set fragments, merged over every run last
  int ranks_per_run = 1;               // data-parallel ranks per run (must divide the world)
  std::string device = "auto";
  bool quiet = false;
  Communicator* comm = nullptr;  // the job's ranks; null: this process alone
};

struct EvalCommand {
  std::vector<std::string> args;  // must be empty
  std::vector<std::string> overrides;
  std::string weights;
  std::string device = "auto";
  int batches = 0;  // 0: the config's train.eval_batches
  // When set: a safetensors file with "tokens" I32 [T] and "logits" F32 [T, V] of the first
  // held-out sequence (data positions; for comparing with other implementations).
  std::string logits_out;
};

struct PrepareCommand {
  std::vector<std::string> args;  // must be empty
  std::vector<std::string> inputs;
  std::string out_dir;
  std::string prefix = "corpus";
  int64_t shard_tokens = 100000000;
  bool bos = true;
  std::string doc_separator = "\n\n\n";
  double val_fraction = 0.05;
};

struct ExportCommand {
  std::vector<std::string> args;  // [CHECKPOINT_DIR]
  std::string format = "hf";
  std::string out_dir;
  std::string dtype = "bf16";
};

struct StatsCommand {
  std::vector<std::string> args;       // must be empty
  std::vector<std::string> overrides;  // --set fragments
  std::string weights;                 // model.safetensors or a ckpt_<step>/ directory
  std::string data;                    // glob of held-out shards (data.val_shards); optional
  std::string out;                     // stats line output; default <weights>.stats.jsonl
  std::string device = "auto";
};

absl::Status RunTrain(const TrainCommand& command);
// Trains every run of a sweep (launch/sweep.h, launch/sweep_runner.h).
absl::Status RunSweep(const SweepCommand& command);
absl::Status RunStats(const StatsCommand& command);
absl::Status RunExport(const ExportCommand& command);
absl::Status RunEval(const EvalCommand& command);
absl::Status RunPrepare(const PrepareCommand& command);

}  // namespace sinklab

#endif  // SINKLAB_LAUNCH_COMMANDS_H_

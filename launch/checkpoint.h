// Training checkpoints: <run_dir>/ckpt_<step, 8 digits>/state.safetensors holding
//   "param.<name>"   fp32 master weights (layers/parameter.h names),
//   "<state name>"   optimizer state (OptimizerSet::StateTensors, e.g. "adamw.m.embed"),
// and in __metadata__: "format" (sinklab-checkpoint-v1), "step" (optimizer steps done),
// "optimizer_step", "config" (the resolved config text), "rng_seed" and "loader_step".
// Parameter init is the only consumer of randomness and the loader is a pure function of
// (seed, step, rank, world size) (data/loader.h), so the seed and the step are the whole RNG
// and loader state: resuming from a checkpoint continues bit for bit on the CPU.
//
// A checkpoint is written into ckpt_<step>.tmp/ (file fsync'ed), which is then renamed to
// ckpt_<step>/ and the run directory fsync'ed: a crash leaves the previous checkpoints
// intact and at worst a *.tmp directory, which loading ignores.
#ifndef SINKLAB_LAUNCH_CHECKPOINT_H_
#define SINKLAB_LAUNCH_CHECKPOINT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "configs/sinklab.pb.h"
#include "layers/model.h"
#include "optim/optimizer_set.h"

namespace sinklab {

// "<run_dir>/ckpt_00000020".
std::string CheckpointDir(const std::string& run_dir, int64_t step);

// Writes the checkpoint of `step` and then deletes all but the newest `keep` (0: keep all).
absl::Status SaveCheckpoint(const std::string& run_dir, int64_t step, const Model& model,
                            const OptimizerSet& optimizer, const Config& config, int keep);

// The checkpoint directories of a run, oldest first (by step; *.tmp excluded).
std::vector<std::string> ListCheckpoints(const std::string& run_dir);

// Loads one checkpoint into `model` and `optimizer` (which must have been built from the
// same config); returns its step. Every tensor must be present with its exact shape.
absl::StatusOr<int64_t> LoadCheckpoint(const std::string& ckpt_dir, Model* model,
                                       OptimizerSet* optimizer);

// LoadCheckpoint of the newest checkpoint that loads; a newest one that does not is
// reported (LogWarning with the reason) and the one before it is tried. NotFound when the
// run has none.
absl::StatusOr<int64_t> LoadLatestCheckpoint(const std::string& run_dir, Model* model,
                                             OptimizerSet* optimizer);

// The resolved config stored in a checkpoint.
absl::StatusOr<Config> ReadCheckpointConfig(const std::string& ckpt_dir,
                                            const std::vector<std::string>& overrides);

}  // namespace sinklab

#endif  // SINKLAB_LAUNCH_CHECKPOINT_H_

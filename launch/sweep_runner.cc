#include "launch/sweep_runner.h"

#include <filesystem>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "configs/config_util.h"
#include "core/file_util.h"
#include "core/log.h"
#include "core/status.h"
#include "launch/checkpoint.h"

namespace sinklab {
namespace {

namespace fs = std::filesystem;

// What a group does with a run; decided by the group's rank 0 from the run directory.
enum RunState : int32_t { kFresh = 0, kResume = 1, kFinished = 2 };

RunState StateOf(const std::string& run_dir) {
  std::error_code error;
  if (fs::exists(run_dir + "/" + kSweepDoneFile, error)) return kFinished;
  if (fs::is_directory(run_dir, error) && !ListCheckpoints(run_dir).empty()) return kResume;
  return kFresh;
}

// A fresh start in an unfinished run's directory: what an earlier attempt left (metrics
// appended to, statistics) would mix with the new run's.
absl::Status EmptyRunDir(const std::string& run_dir) {
  std::error_code error;
  fs::remove_all(run_dir, error);
  if (error) {
    return absl::PermissionDeniedError(
        absl::StrCat(run_dir, ": cannot empty the unfinished run's directory: ", error.message()));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<SweepSummary> RunSweepRuns(const std::vector<SweepRun>& runs, int ranks_per_run,
                                          Communicator& world, const TrainOptions& options) {
  const int world_size = world.world_size();
  if (ranks_per_run < 1 || world_size % ranks_per_run != 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "--ranks_per_run=%d must divide the number of ranks (%d, mpirun -np)", ranks_per_run,
        world_size));
  }
  for (const SweepRun& run : runs) {
    SL_RETURN_IF_ERROR(Annotate(ValidateForWorldSize(run.config, ranks_per_run),
                                absl::StrCat("sweep run ", run.label, " on --ranks_per_run=",
                                             ranks_per_run, " ranks")));
  }
  const int groups = world_size / ranks_per_run;
  const int color = world.rank() / ranks_per_run;
  const std::unique_ptr<Communicator> group = world.Split(color);
  const bool leader = group->rank() == 0;
  // Per group, counted on its rank 0 only: summed over the world they are the totals.
  double counts[3] = {0, 0, 0};  // trained, resumed, skipped
  for (size_t i = color; i < runs.size(); i += groups) {
    const SweepRun& run = runs[i];
    int32_t state = leader ? StateOf(run.run_dir) : kFresh;
    group->Broadcast(&state, sizeof(state), 0);
    if (state == kFinished) {
      LogInfo(absl::StrFormat("sweep: %s (%s) is finished, skipped", run.label, run.what));
      counts[2] += leader ? 1 : 0;
      continue;
    }
    if (state == kFresh && leader) SL_RETURN_IF_ERROR(EmptyRunDir(run.run_dir));
    LogInfo(absl::StrFormat("sweep: %s %s (%s) in %s on %d rank(s), group %d of %d",
                            state == kResume ? "resuming" : "training", run.label, run.what,
                            run.run_dir, ranks_per_run, color, groups));
    TrainOptions run_options = options;
    run_options.comm = group.get();
    run_options.run_dir = run.run_dir;
    run_options.resume_dir = state == kResume ? run.run_dir : "";
    run_options.stop_at_step = 0;
    run_options.progress_prefix = absl::StrCat("[", run.label, "] ");
    absl::StatusOr<TrainResult> result = Train(run.config, run_options);
    if (!result.ok()) return Annotate(result.status(), absl::StrCat("sweep run ", run.label));
    if (leader) {
      SL_RETURN_IF_ERROR(WriteFileAtomically(run.run_dir + "/" + kSweepDoneFile,
                                             absl::StrCat(run.what, "\n")));
    }
    counts[state == kResume ? 1 : 0] += leader ? 1 : 0;
  }
  world.AllReduceSum(counts, 3);
  SweepSummary summary;
  summary.trained = static_cast<int>(counts[0]);
  summary.resumed = static_cast<int>(counts[1]);
  summary.skipped = static_cast<int>(counts[2]);
  return summary;
}

}  // namespace sinklab

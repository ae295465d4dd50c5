// Running a sweep's runs (launch/sweep.h) on the ranks of a job: `mpirun -np N sinklab sweep
// SWEEP --ranks_per_run K` splits the N ranks into N / K groups of K consecutive ranks
// (Communicator::Split); run i goes to group i mod (N / K), and each group trains its runs
// one after the other, data-parallel over its K ranks. Without mpirun: one group of one.
//
// A run is finished when its directory holds DONE, which the group's rank 0 writes
// (atomically) after the run's final weights; a restarted sweep skips finished runs, resumes
// an unfinished one from its newest loadable checkpoint, and starts one without a checkpoint
// over in an emptied directory. Decisions are made on the group's rank 0 and broadcast, so a
// group's ranks never disagree about what to do.
#ifndef SINKLAB_LAUNCH_SWEEP_RUNNER_H_
#define SINKLAB_LAUNCH_SWEEP_RUNNER_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/comm.h"
#include "launch/sweep.h"
#include "launch/trainer.h"

namespace sinklab {

// The completion marker in a run directory.
inline constexpr char kSweepDoneFile[] = "DONE";

struct SweepSummary {
  int trained = 0;  // started from scratch and finished
  int resumed = 0;  // continued from a checkpoint and finished
  int skipped = 0;  // already finished
};

// Collective over `world`: trains every run of `runs` once, as the file comment says;
// `options` (device, progress) applies to each run (its comm, run_dir, resume_dir and
// progress_prefix are set here). Returns the counts over all groups (the same on every
// rank). InvalidArgument when ranks_per_run does not divide the world size or a run's batch
// cannot be split over ranks_per_run ranks (checked for every run before any trains); a
// failing run's error names its label.
absl::StatusOr<SweepSummary> RunSweepRuns(const std::vector<SweepRun>& runs, int ranks_per_run,
                                          Communicator& world, const TrainOptions& options);

}  // namespace sinklab

#endif  // SINKLAB_LAUNCH_SWEEP_RUNNER_H_

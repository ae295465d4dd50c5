// The directories tests make under ::testing::TempDir() for runs, checkpoints and weights are
// named <kind>_test_<pid>[_<tag>] (e.g. checkpoint_test_4242_resume). Without cleanup every
// test process left its own behind (hundreds per ctest run on a developer's machine).
#ifndef SINKLAB_TESTS_TEST_DIRS_H_
#define SINKLAB_TESTS_TEST_DIRS_H_

#include <string>

namespace sinklab {

// Removes the entries of `root` named <prefix><pid> or <prefix><pid>_<anything> for the
// tests' prefixes (checkpoint_test_, data_parallel_test_, dist_test_, run_dir_test_,
// stats_runner_test_, stats_weights_test_, trainer_test_); returns how many it removed.
// Entries of other processes and other names are left alone.
int RemoveTestDirsOf(const std::string& root, int pid);

}  // namespace sinklab

#endif  // SINKLAB_TESTS_TEST_DIRS_H_

// main() of the MPI tests: MPI first (core/comm.h), then GoogleTest on every rank. Rank 0
// prints the usual report; the others print only their failures, prefixed with the rank.
// The exit status is non-zero on every rank when a test failed on any rank.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <memory>

#include "absl/strings/str_cat.h"
#include "core/log.h"
#include "gtest/gtest.h"
#include "tests/dist/mpi_env.h"
#include "tests/test_dirs.h"

// dist_tests need 2 ranks; the GPU tests (dist_cuda_tests) run on 1 or more.
#ifndef SINKLAB_MPI_TEST_MIN_RANKS
#define SINKLAB_MPI_TEST_MIN_RANKS 2
#endif

namespace sinklab {
namespace {

Communicator* g_world = nullptr;

// Failures of a non-zero rank (the default printer is removed there).
class RankFailurePrinter : public ::testing::EmptyTestEventListener {
 public:
  explicit RankFailurePrinter(int rank) : rank_(rank) {}
  void OnTestPartResult(const ::testing::TestPartResult& result) override {
    if (!result.failed()) return;
    std::fprintf(stderr, "[rank %d] %s:%d: Failure\n%s\n", rank_,
                 result.file_name() == nullptr ? "?" : result.file_name(),
                 result.line_number(), result.message());
  }

 private:
  int rank_;
};

}  // namespace

Communicator& World() { return *g_world; }

std::string LocalTestRoot(const std::string& tag) {
  return absl::StrCat(::testing::TempDir(), "/dist_test_", ::getpid(), "_", tag);
}

std::string SharedTestRoot(const std::string& tag) {
  return BroadcastString(World(), LocalTestRoot(tag), 0);
}

void CheckOkOrAbort(const absl::Status& status) {
  if (!status.ok()) World().Abort(absl::StrCat("test failed: ", status.ToString()));
}

}  // namespace sinklab

int main(int argc, char** argv) {
  setenv("OMP_WAIT_POLICY", "PASSIVE", /*overwrite=*/0);
  absl::StatusOr<std::unique_ptr<sinklab::Communicator>> world =
      sinklab::InitWorldCommunicator(&argc, &argv);
  if (!world.ok()) {
    std::fprintf(stderr, "%s\n", world.status().ToString().c_str());
    return 1;
  }
  if ((*world)->world_size() < SINKLAB_MPI_TEST_MIN_RANKS) {
    std::fprintf(stderr, "these MPI tests need mpirun -np %d (or more)\n",
                 SINKLAB_MPI_TEST_MIN_RANKS);
    return 1;
  }
  sinklab::g_world = world->get();
  ::testing::InitGoogleTest(&argc, argv);
  const int rank = (*world)->rank();
  if (rank != 0) {
    sinklab::SetLogQuiet(true);
    ::testing::TestEventListeners& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new sinklab::RankFailurePrinter(rank));
  }
  double failed = RUN_ALL_TESTS() != 0 ? 1 : 0;
  (*world)->AllReduceSum(&failed, 1);
  // Every rank is done with the directories (rank 0's are shared): each removes its own,
  // unless a test failed anywhere (tests/test_dirs.h).
  if (failed == 0) sinklab::RemoveTestDirsOf(::testing::TempDir(), ::getpid());
  world->reset();  // MPI_Finalize
  return failed > 0 ? 1 : 0;
}

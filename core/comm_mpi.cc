// The MPI communicator (host buffers, fp32 sums with MPI_SUM), MPI initialization and the
// fatal-error hooks of a multi-rank job. Compiled only with SINKLAB_MPI (core/CMakeLists.txt).
//
// MPI calls take int counts: sums and broadcasts go in chunks of kMaxChunk elements; a shard
// of ReduceScatterSum / AllGather must fit an int (2^31 floats = 8 GiB per rank).
#include <mpi.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>

#include "absl/strings/str_cat.h"
#include "core/comm.h"
#include "core/status.h"

namespace sinklab {
namespace {

constexpr int64_t kMaxChunk = int64_t{1} << 30;

// World rank and size, for the prefix of fatal messages from any communicator.
int g_world_rank = 0;
int g_world_size = 1;
// Rank among the processes of this host (MPI_COMM_TYPE_SHARED), found at initialization.
int g_shared_local_rank = 0;
// The SIGABRT line, built before any failure (a signal handler must not allocate).
char g_abort_line[160];
size_t g_abort_line_size = 0;

void PrintRankMessage(const std::string& message) {
  std::fprintf(stderr, "sinklab rank %d/%d: %s\n", g_world_rank, g_world_size,
               message.c_str());
  std::fflush(stderr);
}

class MpiCommunicator : public Communicator {
 public:
  // Takes ownership of `comm` (freed on destruction) unless it is MPI_COMM_WORLD, which
  // instead makes this object the one that finalizes MPI.
  explicit MpiCommunicator(MPI_Comm comm) : comm_(comm) {
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &world_size_);
  }
  ~MpiCommunicator() override {
    if (comm_ == MPI_COMM_WORLD) {
      MPI_Finalize();
    } else {
      MPI_Comm_free(&comm_);
    }
  }
  MpiCommunicator(const MpiCommunicator&) = delete;
  MpiCommunicator& operator=(const MpiCommunicator&) = delete;

  int rank() const override { return rank_; }
  int world_size() const override { return world_size_; }
  std::string Describe() const override {
    return absl::StrCat("MPI rank ", rank_, " of ", world_size_);
  }

  void AllReduceSum(float* data, int64_t count) override {
    AllReduceChunks(data, count, MPI_FLOAT);
  }
  void AllReduceSum(double* data, int64_t count) override {
    AllReduceChunks(data, count, MPI_DOUBLE);
  }
  void ReduceScatterSum(const float* send, float* recv, int64_t shard) override {
    SL_CHECK_MSG(shard >= 0 && shard <= INT_MAX, absl::StrCat("shard=", shard));
    MPI_Reduce_scatter_block(send, recv, static_cast<int>(shard), MPI_FLOAT, MPI_SUM, comm_);
  }
  void AllGather(const float* send, float* recv, int64_t shard) override {
    SL_CHECK_MSG(shard >= 0 && shard <= INT_MAX, absl::StrCat("shard=", shard));
    MPI_Allgather(send, static_cast<int>(shard), MPI_FLOAT, recv, static_cast<int>(shard),
                  MPI_FLOAT, comm_);
  }
  void Broadcast(void* data, int64_t bytes, int root) override {
    SL_CHECK_MSG(bytes >= 0 && root >= 0 && root < world_size_,
                 absl::StrCat("bytes=", bytes, " root=", root));
    char* bytes_ptr = static_cast<char*>(data);
    for (int64_t done = 0; done < bytes; done += kMaxChunk) {
      const int n = static_cast<int>(std::min(kMaxChunk, bytes - done));
      MPI_Bcast(bytes_ptr + done, n, MPI_BYTE, root, comm_);
    }
  }
  void Barrier() override { MPI_Barrier(comm_); }

  std::unique_ptr<Communicator> Split(int color) override {
    SL_CHECK_MSG(color >= 0, absl::StrCat("color=", color));
    MPI_Comm part = MPI_COMM_NULL;
    MPI_Comm_split(comm_, color, rank_, &part);
    return std::make_unique<MpiCommunicator>(part);
  }

  [[noreturn]] void Abort(const std::string& message) override {
    PrintRankMessage(message);
    MPI_Abort(MPI_COMM_WORLD, 1);
    std::_Exit(1);  // MPI_Abort does not return; this is for the compiler
  }

 private:
  template <typename T>
  void AllReduceChunks(T* data, int64_t count, MPI_Datatype type) {
    SL_CHECK_MSG(count >= 0, absl::StrCat("count=", count));
    for (int64_t done = 0; done < count; done += kMaxChunk) {
      const int n = static_cast<int>(std::min(kMaxChunk, count - done));
      MPI_Allreduce(MPI_IN_PLACE, data + done, n, type, MPI_SUM, comm_);
    }
  }

  MPI_Comm comm_;
  int rank_ = 0;
  int world_size_ = 1;
};

// SIGABRT (a failed SL_CHECK or any abort()): CheckFailed has printed the reason; add which
// rank it was, then die of the signal, which mpirun answers by ending every rank.
void OnAbortSignal(int signal_number) {
  ssize_t ignored = ::write(STDERR_FILENO, g_abort_line, g_abort_line_size);
  (void)ignored;
  ::raise(signal_number);  // SA_RESETHAND restored the default action: delivered on return
}

// An exception nobody caught: say what it was and on which rank, then end the job.
[[noreturn]] void OnTerminate() {
  std::string what = "uncaught exception";
  if (std::exception_ptr current = std::current_exception()) {
    try {
      std::rethrow_exception(current);
    } catch (const std::exception& e) {
      what = absl::StrCat("uncaught exception: ", e.what());
    } catch (...) {
      what = "uncaught exception of a non-std type";
    }
  }
  PrintRankMessage(what);
  MPI_Abort(MPI_COMM_WORLD, 1);
  std::_Exit(1);
}

void InstallFatalErrorHooks() {
  const int n = std::snprintf(g_abort_line, sizeof(g_abort_line),
                              "sinklab rank %d/%d: aborted (the reason is printed above); "
                              "ending the job\n",
                              g_world_rank, g_world_size);
  g_abort_line_size = static_cast<size_t>(std::max(0, n));
  struct sigaction action;
  std::memset(&action, 0, sizeof(action));
  action.sa_handler = OnAbortSignal;
  action.sa_flags = SA_RESETHAND;
  sigemptyset(&action.sa_mask);
  sigaction(SIGABRT, &action, nullptr);
  std::set_terminate(OnTerminate);
}

}  // namespace

int LocalRank() {
  const int from_launcher = LocalRankFromEnvironment(std::getenv);
  return from_launcher >= 0 ? from_launcher : g_shared_local_rank;
}

absl::StatusOr<std::unique_ptr<Communicator>> InitWorldCommunicator(int* argc, char*** argv) {
  if (!StartedByMpiLauncher()) return MakeSingleProcessCommunicator();
  int provided = 0;
  MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
  if (provided < MPI_THREAD_FUNNELED) {
    MPI_Finalize();
    return absl::FailedPreconditionError(absl::StrCat(
        "MPI provides thread level ", provided, ", sinklab needs MPI_THREAD_FUNNELED"));
  }
  auto world = std::make_unique<MpiCommunicator>(MPI_COMM_WORLD);
  g_world_rank = world->rank();
  g_world_size = world->world_size();
  MPI_Comm host = MPI_COMM_NULL;  // this host's processes, for LocalRank
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, g_world_rank, MPI_INFO_NULL, &host);
  MPI_Comm_rank(host, &g_shared_local_rank);
  MPI_Comm_free(&host);
  if (g_world_size > 1) InstallFatalErrorHooks();
  return world;
}

}  // namespace sinklab

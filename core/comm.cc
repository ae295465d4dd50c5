// The single-process communicator and the helpers shared by every implementation.
#include "core/comm.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/status.h"

namespace sinklab {
namespace {

// World of one: a sum over ranks is the value itself, a gather a copy.
class SingleProcessCommunicator : public Communicator {
 public:
  int rank() const override { return 0; }
  int world_size() const override { return 1; }
  std::string Describe() const override { return "single process"; }

  void AllReduceSum(float* data, int64_t count) override { CheckCount(count); }
  void AllReduceSum(double* data, int64_t count) override { CheckCount(count); }
  void ReduceScatterSum(const float* send, float* recv, int64_t shard) override {
    Copy(send, recv, shard);
  }
  void AllGather(const float* send, float* recv, int64_t shard) override {
    Copy(send, recv, shard);
  }
  void Broadcast(void* data, int64_t bytes, int root) override {
    SL_CHECK_MSG(root == 0 && bytes >= 0, absl::StrCat("root=", root, " bytes=", bytes));
  }
  void Barrier() override {}
  std::unique_ptr<Communicator> Split(int color) override {
    SL_CHECK_MSG(color >= 0, absl::StrCat("color=", color));
    return MakeSingleProcessCommunicator();
  }
  [[noreturn]] void Abort(const std::string& message) override {
    std::fprintf(stderr, "sinklab: %s\n", message.c_str());
    std::fflush(stderr);
    std::exit(1);
  }

 private:
  static void CheckCount(int64_t count) { SL_CHECK_MSG(count >= 0, absl::StrCat(count)); }
  static void Copy(const float* send, float* recv, int64_t shard) {
    CheckCount(shard);
    if (shard > 0 && send != recv) std::memmove(recv, send, shard * sizeof(float));
  }
};

}  // namespace

int64_t ShardSize(int64_t count, int world_size) {
  SL_CHECK_MSG(count >= 0 && world_size >= 1,
               absl::StrCat("count=", count, " world_size=", world_size));
  return (count + world_size - 1) / world_size;
}

std::string BroadcastString(Communicator& comm, const std::string& text, int root) {
  int64_t size = static_cast<int64_t>(text.size());
  comm.Broadcast(&size, sizeof(size), root);
  std::string out = comm.rank() == root ? text : std::string(static_cast<size_t>(size), '\0');
  if (size > 0) comm.Broadcast(out.data(), size, root);
  return out;
}

std::unique_ptr<Communicator> MakeSingleProcessCommunicator() {
  return std::make_unique<SingleProcessCommunicator>();
}

bool StartedByMpiLauncher() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE"}) {
    if (std::getenv(name) != nullptr) return true;
  }
  return false;
}

int LocalRankFromEnvironment(const std::function<const char*(const char*)>& get_env) {
  for (const char* name : {"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID"}) {
    const char* value = get_env(name);
    if (value == nullptr) continue;
    int local_rank = -1;
    return absl::SimpleAtoi(value, &local_rank) && local_rank >= 0 ? local_rank : -1;
  }
  return -1;
}

int GpuForLocalRank(int local_rank, int device_count) {
  SL_CHECK_MSG(local_rank >= 0 && device_count >= 1,
               absl::StrCat("local_rank=", local_rank, " device_count=", device_count));
  return local_rank % device_count;
}

#if !SINKLAB_WITH_MPI
int LocalRank() { return std::max(0, LocalRankFromEnvironment(std::getenv)); }

absl::StatusOr<std::unique_ptr<Communicator>> InitWorldCommunicator(int* argc, char*** argv) {
  if (StartedByMpiLauncher()) {
    return absl::FailedPreconditionError(
        "started by mpirun, but this sinklab was built without MPI (-DSINKLAB_MPI=OFF)");
  }
  return MakeSingleProcessCommunicator();
}
#endif

}  // namespace sinklab

// Communicator: the collectives data-parallel training and sweeps need, behind one interface
// with a single-process implementation (world 1, no MPI; comm.cc), an MPI one for the CPU
// (comm_mpi.cc) and an NCCL one for device buffers on GPUs (comm_nccl.h; DESIGN.md section 8).
//
// Rules every implementation keeps:
// - Collectives block until every rank of the communicator has called them; all ranks must
//   call the same collectives in the same order with the same counts.
// - Buffers live in the implementation's memory space: host memory for the single-process
//   and MPI communicators, device memory for NCCL.
// - Sums are deterministic for a given world size (Open MPI's default algorithms reduce in a
//   fixed order for a fixed communicator size), and every rank receives the same bits.
// - Sharded collectives split a buffer of world_size * shard elements into world_size equal
//   contiguous shards, shard r = elements [r * shard, (r + 1) * shard). A caller with
//   `count` elements uses shard = ShardSize(count, world_size) and pads the buffer to
//   world_size * shard elements: padding elements it sends are zero (they still get summed),
//   and what it receives there is ignored.
// - Errors inside the transport are fatal (MPI aborts the job, NCCL aborts itself and then
//   the job); there is no Status to check.
#ifndef SINKLAB_CORE_COMM_H_
#define SINKLAB_CORE_COMM_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace sinklab {

class Communicator {
 public:
  virtual ~Communicator() = default;

  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  // "single process" or "MPI rank 1 of 2", for logs.
  virtual std::string Describe() const = 0;

  // data[i] <- sum over ranks of data[i], in place.
  virtual void AllReduceSum(float* data, int64_t count) = 0;
  virtual void AllReduceSum(double* data, int64_t count) = 0;
  // recv[0, shard) <- sum over ranks of their send[rank * shard, (rank + 1) * shard);
  // send holds world_size * shard elements. send and recv must not overlap.
  virtual void ReduceScatterSum(const float* send, float* recv, int64_t shard) = 0;
  // recv[r * shard, (r + 1) * shard) <- rank r's send[0, shard); recv holds
  // world_size * shard elements. send and recv must not overlap.
  virtual void AllGather(const float* send, float* recv, int64_t shard) = 0;
  // data[0, bytes) <- root's data[0, bytes).
  virtual void Broadcast(void* data, int64_t bytes, int root) = 0;
  virtual void Barrier() = 0;

  // Collective: splits this communicator into one per distinct `color` (>= 0), ranks
  // ordered as here (a sweep's groups of ranks_per_run consecutive ranks). The result is
  // used and destroyed before this communicator is.
  virtual std::unique_ptr<Communicator> Split(int color) = 0;

  // Ends the whole job (every rank of every communicator, not only this one's) after
  // printing "sinklab rank R/N: <message>" to stderr (R, N of the world; "sinklab: <message>"
  // for a single process); exit status 1. Never returns and never waits for other ranks, so
  // a rank that fails alone cannot leave the others hanging.
  [[noreturn]] virtual void Abort(const std::string& message) = 0;
};

// Elements per shard when `count` elements are split over `world_size` ranks:
// ceil(count / world_size), so the last shards may be partly (or wholly) padding.
int64_t ShardSize(int64_t count, int world_size);

// Root's `text` on every rank (its length first, then its bytes). Collective.
std::string BroadcastString(Communicator& comm, const std::string& text, int root);

// A communicator of this process alone: rank 0 of 1, every collective a copy or no-op.
std::unique_ptr<Communicator> MakeSingleProcessCommunicator();

// True when this process was started by an MPI launcher (mpirun / mpiexec / srun with PMIx:
// it sees OMPI_COMM_WORLD_SIZE, PMIX_RANK or PMI_SIZE in its environment).
bool StartedByMpiLauncher();

// This process's rank among the job's processes on its host, which picks its GPU
// (GpuForLocalRank): the launcher's value (LocalRankFromEnvironment), else, under MPI, its
// rank in MPI_Comm_split_type(MPI_COMM_TYPE_SHARED) as InitWorldCommunicator found it, else 0.
int LocalRank();

// The local rank an MPI launcher put in the environment (`get_env` answers as getenv): the
// first of OMPI_COMM_WORLD_LOCAL_RANK (Open MPI), MPI_LOCALRANKID (MPICH's Hydra) and
// SLURM_LOCALID (srun) that is set; -1 when none is set or the first set one is not an
// integer >= 0.
int LocalRankFromEnvironment(const std::function<const char*(const char*)>& get_env);

// The GPU a process of local rank `local_rank` uses when its host shows `device_count` >= 1
// GPUs: local_rank % device_count (one process per GPU when the counts match).
int GpuForLocalRank(int local_rank, int device_count);

// The communicator of every process of the job, created once, first thing in main:
//  - started by an MPI launcher: MPI_Init_thread (MPI_THREAD_FUNNELED: only the main thread
//    calls MPI; OpenMP threads never do) and MPI_COMM_WORLD; destroying the returned object
//    calls MPI_Finalize. With more than one rank it also installs the fatal-error hooks: an
//    uncaught exception prints "sinklab rank R/N: ..." and MPI_Aborts; SIGABRT (a failed
//    SL_CHECK, whose message is printed just before) prints the rank and ends the process,
//    which mpirun turns into the end of the job.
//  - otherwise: the single-process communicator, without initializing MPI, so a plain
//    `sinklab train` never needs an MPI runtime (Open MPI's singleton init is slow and can
//    fail in containers).
// FailedPrecondition when started by a launcher in a build without MPI (-DSINKLAB_MPI=OFF).
absl::StatusOr<std::unique_ptr<Communicator>> InitWorldCommunicator(int* argc, char*** argv);

}  // namespace sinklab

#endif  // SINKLAB_CORE_COMM_H_

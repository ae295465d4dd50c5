// NcclCommunicator: the Communicator of core/comm.h for device buffers (one GPU per rank),
// built over a host communicator (MPI, or the single-process one) that carries its setup:
// rank 0 makes the NCCL unique id, the host communicator broadcasts it, and every rank calls
// ncclCommInitRank on its current CUDA device (cudaSetDevice first; GpuForLocalRank).
// Compiled only with SINKLAB_NCCL (CUDA + MPI + NCCL; core/CMakeLists.txt).
//
// Collectives run on this communicator's own CUDA stream. The Communicator calls enqueue and
// then Wait(); the Enqueue* calls only enqueue, for callers that pipeline several (gradient
// buckets). Buffers must not be touched by other streams until Wait() returns, and work on
// other streams that produces them must be finished (or ordered before) when they are
// enqueued.
//
// Errors: every NCCL call is checked. Asynchronous errors (a peer that died, a network
// failure) and hangs (a peer that stopped calling collectives) are caught by Wait(), which
// polls cudaStreamQuery and ncclCommGetAsyncError until the stream is idle or the timeout
// (SINKLAB_NCCL_TIMEOUT_S, default 600 s) passes. Any failure calls ncclCommAbort, then the
// host communicator's Abort("NCCL ..."), which ends the whole job with this rank's message.
#ifndef SINKLAB_CORE_COMM_NCCL_H_
#define SINKLAB_CORE_COMM_NCCL_H_

#include <cuda_runtime.h>
#include <nccl.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/comm.h"

namespace sinklab {

// The default of SINKLAB_NCCL_TIMEOUT_S: long enough for a slow step's collectives, short
// enough that a hung job does not hold its GPUs for hours.
constexpr double kDefaultNcclTimeoutSeconds = 600.0;

// Seconds Wait() allows: `env_value` (SINKLAB_NCCL_TIMEOUT_S's value, or null when unset)
// parsed as a number > 0, or the default when null. InvalidArgument otherwise.
absl::StatusOr<double> ParseNcclTimeoutSeconds(const char* env_value);

class NcclCommunicator : public Communicator {
 public:
  // Collective over `host` (not owned; it must outlive this communicator). Uses the current
  // CUDA device. Fatal errors (a failed ncclGetUniqueId / ncclCommInitRank) end the job
  // through host->Abort.
  static std::unique_ptr<NcclCommunicator> Create(Communicator* host, double timeout_seconds);
  // The same, with the timeout of SINKLAB_NCCL_TIMEOUT_S (a bad value ends the job).
  static std::unique_ptr<NcclCommunicator> Create(Communicator* host);
  ~NcclCommunicator() override;
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  int rank() const override { return rank_; }
  int world_size() const override { return world_size_; }
  std::string Describe() const override;

  // Communicator's collectives on device pointers: each enqueues, then Wait()s.
  void AllReduceSum(float* data, int64_t count) override;
  void AllReduceSum(double* data, int64_t count) override;
  void ReduceScatterSum(const float* send, float* recv, int64_t shard) override;
  void AllGather(const float* send, float* recv, int64_t shard) override;
  void Broadcast(void* data, int64_t bytes, int root) override;
  // Waits for this rank's collectives, then the host communicator's barrier.
  void Barrier() override;
  // The host communicator split by `color`, and an NCCL communicator over each part (a new
  // unique id per part); the result owns its host part.
  std::unique_ptr<Communicator> Split(int color) override;
  // ncclCommAbort (outstanding collectives are cancelled), then the host's Abort.
  [[noreturn]] void Abort(const std::string& message) override;

  // In-place fp32 sum over ranks, enqueued on stream() without waiting.
  void EnqueueAllReduceSum(float* data, int64_t count);
  // The same for several buffers at once (an NCCL group: one launch).
  struct FloatSpan {
    float* data;
    int64_t count;
  };
  void EnqueueAllReduceSums(const std::vector<FloatSpan>& buffers);
  // All-gather of `bytes` per rank (rank q's `send` lands at recv + q * bytes; send may be
  // recv + rank() * bytes, in place), enqueued on stream() after the work queued on `after`
  // so far, and the work queued on `after` later waits for it (events; no host wait).
  void EnqueueAllGatherBytes(const void* send, void* recv, int64_t bytes, cudaStream_t after);
  // Until every collective enqueued so far has finished; ends the job on an NCCL or CUDA
  // error, or when the timeout passes first.
  void Wait();
  cudaStream_t stream() const { return stream_; }
  int device() const { return device_; }

 private:
  NcclCommunicator(Communicator* host, double timeout_seconds);
  // Ends the job when `result` is not ncclSuccess, naming `what`.
  void Check(ncclResult_t result, const char* what);
  [[noreturn]] void Fail(const std::string& message);

  Communicator* host_;                        // setup, Barrier, Abort
  std::unique_ptr<Communicator> owned_host_;  // Split's part of the host communicator
  double timeout_seconds_;
  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
  cudaEvent_t before_ = nullptr, after_ = nullptr;  // EnqueueAllGatherBytes's ordering
  int rank_ = 0, world_size_ = 1, device_ = 0;
};

}  // namespace sinklab

#endif  // SINKLAB_CORE_COMM_NCCL_H_

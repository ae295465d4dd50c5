#include "core/comm_nccl.h"

#include <chrono>
#include <cstdlib>
#include <thread>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/cuda_check.h"
#include "core/status.h"

namespace sinklab {
namespace {

// Wait() spins (yielding) this long before it sleeps between polls: a bucket's all-reduce
// often takes less, and a sleep would add its granularity to every step.
constexpr auto kSpinBeforeSleep = std::chrono::milliseconds(2);
constexpr auto kPollSleep = std::chrono::microseconds(100);

size_t Count(int64_t count, const char* what) {
  SL_CHECK_MSG(count >= 0, absl::StrCat(what, "=", count));
  return static_cast<size_t>(count);
}

}  // namespace

absl::StatusOr<double> ParseNcclTimeoutSeconds(const char* env_value) {
  if (env_value == nullptr) return kDefaultNcclTimeoutSeconds;
  double seconds = 0;
  if (!absl::SimpleAtod(env_value, &seconds) || !(seconds > 0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "SINKLAB_NCCL_TIMEOUT_S: expected a number of seconds > 0, got '", env_value, "'"));
  }
  return seconds;
}

NcclCommunicator::NcclCommunicator(Communicator* host, double timeout_seconds)
    : host_(host), timeout_seconds_(timeout_seconds) {}

std::unique_ptr<NcclCommunicator> NcclCommunicator::Create(Communicator* host) {
  SL_CHECK(host != nullptr);
  const absl::StatusOr<double> timeout =
      ParseNcclTimeoutSeconds(std::getenv("SINKLAB_NCCL_TIMEOUT_S"));
  if (!timeout.ok()) host->Abort(std::string(timeout.status().message()));
  return Create(host, *timeout);
}

std::unique_ptr<NcclCommunicator> NcclCommunicator::Create(Communicator* host,
                                                           double timeout_seconds) {
  SL_CHECK(host != nullptr && timeout_seconds > 0);
  std::unique_ptr<NcclCommunicator> nccl(new NcclCommunicator(host, timeout_seconds));
  nccl->rank_ = host->rank();
  nccl->world_size_ = host->world_size();
  SL_CUDA_CHECK(cudaGetDevice(&nccl->device_));
  SL_CUDA_CHECK(cudaStreamCreateWithFlags(&nccl->stream_, cudaStreamNonBlocking));
  SL_CUDA_CHECK(cudaEventCreateWithFlags(&nccl->before_, cudaEventDisableTiming));
  SL_CUDA_CHECK(cudaEventCreateWithFlags(&nccl->after_, cudaEventDisableTiming));
  ncclUniqueId id;
  if (nccl->rank_ == 0) nccl->Check(ncclGetUniqueId(&id), "ncclGetUniqueId");
  host->Broadcast(&id, sizeof(id), 0);
  nccl->Check(ncclCommInitRank(&nccl->comm_, nccl->world_size_, id, nccl->rank_),
              "ncclCommInitRank");
  return nccl;
}

NcclCommunicator::~NcclCommunicator() {
  if (comm_ != nullptr) {
    Wait();
    // Finalize (blocking: waits until every rank's communicator is quiescent), then free.
    Check(ncclCommFinalize(comm_), "ncclCommFinalize");
    ncclComm_t comm = comm_;
    comm_ = nullptr;  // a failed destroy must not be followed by an abort of it
    Check(ncclCommDestroy(comm), "ncclCommDestroy");
  }
  for (cudaEvent_t event : {before_, after_}) {
    if (event != nullptr) SL_CUDA_CHECK(cudaEventDestroy(event));
  }
  if (stream_ != nullptr) SL_CUDA_CHECK(cudaStreamDestroy(stream_));
}

std::string NcclCommunicator::Describe() const {
  return absl::StrCat("NCCL rank ", rank_, " of ", world_size_, " on GPU ", device_, " (over ",
                      host_->Describe(), ")");
}

void NcclCommunicator::EnqueueAllReduceSum(float* data, int64_t count) {
  Check(ncclAllReduce(data, data, Count(count, "count"), ncclFloat32, ncclSum, comm_, stream_),
        "ncclAllReduce");
}

void NcclCommunicator::EnqueueAllReduceSums(const std::vector<FloatSpan>& buffers) {
  // One group: NCCL fuses the operations into one launch (no packing into one buffer).
  Check(ncclGroupStart(), "ncclGroupStart");
  for (const FloatSpan& buffer : buffers) {
    Check(ncclAllReduce(buffer.data, buffer.data, Count(buffer.count, "count"), ncclFloat32,
                        ncclSum, comm_, stream_),
          "ncclAllReduce");
  }
  Check(ncclGroupEnd(), "ncclGroupEnd");
}

void NcclCommunicator::EnqueueAllGatherBytes(const void* send, void* recv, int64_t bytes,
                                             cudaStream_t after) {
  SL_CUDA_CHECK(cudaEventRecord(before_, after));
  SL_CUDA_CHECK(cudaStreamWaitEvent(stream_, before_, 0));
  Check(ncclAllGather(send, recv, Count(bytes, "bytes"), ncclUint8, comm_, stream_),
        "ncclAllGather");
  SL_CUDA_CHECK(cudaEventRecord(after_, stream_));
  SL_CUDA_CHECK(cudaStreamWaitEvent(after, after_, 0));
}

void NcclCommunicator::AllReduceSum(float* data, int64_t count) {
  EnqueueAllReduceSum(data, count);
  Wait();
}

void NcclCommunicator::AllReduceSum(double* data, int64_t count) {
  Check(ncclAllReduce(data, data, Count(count, "count"), ncclFloat64, ncclSum, comm_, stream_),
        "ncclAllReduce");
  Wait();
}

void NcclCommunicator::ReduceScatterSum(const float* send, float* recv, int64_t shard) {
  Check(ncclReduceScatter(send, recv, Count(shard, "shard"), ncclFloat32, ncclSum, comm_, stream_),
        "ncclReduceScatter");
  Wait();
}

void NcclCommunicator::AllGather(const float* send, float* recv, int64_t shard) {
  Check(ncclAllGather(send, recv, Count(shard, "shard"), ncclFloat32, comm_, stream_),
        "ncclAllGather");
  Wait();
}

void NcclCommunicator::Broadcast(void* data, int64_t bytes, int root) {
  SL_CHECK_MSG(root >= 0 && root < world_size_, absl::StrCat("root=", root));
  Check(ncclBroadcast(data, data, Count(bytes, "bytes"), ncclUint8, root, comm_, stream_),
        "ncclBroadcast");
  Wait();
}

void NcclCommunicator::Barrier() {
  Wait();
  host_->Barrier();
}

std::unique_ptr<Communicator> NcclCommunicator::Split(int color) {
  Wait();
  std::unique_ptr<Communicator> part = host_->Split(color);
  std::unique_ptr<NcclCommunicator> nccl = Create(part.get(), timeout_seconds_);
  nccl->owned_host_ = std::move(part);
  return nccl;
}

void NcclCommunicator::Wait() {
  using Clock = std::chrono::steady_clock;
  const Clock::time_point start = Clock::now();
  const auto timeout = std::chrono::duration<double>(timeout_seconds_);
  while (true) {
    const cudaError_t state = cudaStreamQuery(stream_);
    if (state == cudaSuccess) return;
    if (state != cudaErrorNotReady) {
      Fail(absl::StrCat("collective failed on the GPU: ", cudaGetErrorString(state)));
    }
    ncclResult_t async = ncclSuccess;
    Check(ncclCommGetAsyncError(comm_, &async), "ncclCommGetAsyncError");
    if (async != ncclSuccess && async != ncclInProgress) {
      Fail(absl::StrCat("asynchronous error: ", ncclGetErrorString(async), " (",
                        ncclGetLastError(comm_), ")"));
    }
    const auto waited = Clock::now() - start;
    if (waited > timeout) {
      Fail(absl::StrFormat(
          "collective not finished after %.0f s (SINKLAB_NCCL_TIMEOUT_S): a rank stopped "
          "calling collectives, or called them in another order",
          timeout_seconds_));
    }
    if (waited < kSpinBeforeSleep) {
      std::this_thread::yield();
    } else {
      std::this_thread::sleep_for(kPollSleep);
    }
  }
}

void NcclCommunicator::Check(ncclResult_t result, const char* what) {
  if (result == ncclSuccess) return;
  Fail(absl::StrCat(what, ": ", ncclGetErrorString(result), " (", ncclGetLastError(comm_), ")"));
}

void NcclCommunicator::Fail(const std::string& message) {
  Abort(absl::StrCat("NCCL ", message));
  std::_Exit(1);  // Abort does not return; this is for the compiler
}

void NcclCommunicator::Abort(const std::string& message) {
  if (comm_ != nullptr) {
    ncclComm_t comm = comm_;
    comm_ = nullptr;      // Abort is final; nothing may use the communicator after this
    ncclCommAbort(comm);  // its result cannot change what happens next
  }
  host_->Abort(message);
  std::_Exit(1);  // host_->Abort does not return; this is for the compiler
}

}  // namespace sinklab

// CudaBackend::RunRecorded: a call's kernels captured once from the backend's stream into a
// CUDA graph and replayed with one launch (cudaStreamBeginCapture / cudaGraphInstantiate /
// cudaGraphLaunch, CUDA Runtime API "Graph Management" and "Stream Management").
#include <string>

#include "absl/strings/str_cat.h"
#include "core/cuda_check.h"
#include "core/log.h"
#include "layers/cuda/cuda_backend.h"

namespace sinklab {

CudaBackend::Recording::~Recording() {
  if (exec != nullptr) cudaGraphExecDestroy(exec);
}

void CudaBackend::RunRecorded(const std::string& key, const std::function<void()>& enqueue) {
  if (!record_graphs_) return enqueue();
  std::unique_ptr<Recording>& slot = recordings_[key];
  if (slot == nullptr) slot = std::make_unique<Recording>();
  Recording& rec = *slot;
  if (rec.exec != nullptr && rec.generation != buffers_generation_) {
    // A scratch buffer the graph points into was reallocated since: record it again.
    SL_CUDA_CHECK(cudaGraphExecDestroy(rec.exec));
    rec.exec = nullptr;
    rec.calls = 0;
  }
  if (rec.exec == nullptr) {
    // The first call runs as is: cuBLASLt's autotuning, cuDNN's plans and scratch growth
    // (host waits and allocations, which a capture may not contain) happen there.
    if (rec.calls++ == 0) return enqueue();
    const uint64_t generation = buffers_generation_;
    SL_CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
    enqueue();
    cudaGraph_t graph = nullptr;
    const cudaError_t ended = cudaStreamEndCapture(stream_, &graph);
    if (ended != cudaSuccess || generation != buffers_generation_) {
      // Nothing of the capture ran: turn recording off for good and run the call as is.
      if (graph != nullptr) cudaGraphDestroy(graph);
      (void)cudaGetLastError();
      LogWarning(absl::StrCat("CUDA graph capture of ", key, " failed (", cudaGetErrorString(ended),
                              "); running without CUDA graphs"));
      record_graphs_ = false;
      return enqueue();
    }
    SL_CUDA_CHECK(cudaGraphInstantiate(&rec.exec, graph, 0));
    SL_CUDA_CHECK(cudaGraphDestroy(graph));
    rec.generation = generation;
  }
  SL_CUDA_CHECK(cudaGraphLaunch(rec.exec, stream_));
}

int CudaBackend::recorded_graphs() const {
  int graphs = 0;
  for (const auto& [key, rec] : recordings_) graphs += rec->exec != nullptr;
  return graphs;
}

}  // namespace sinklab

#include "launch/backend_factory.h"

#include "layers/cpu/cpu_backend.h"
#if SINKLAB_WITH_CUDA
#include "layers/cuda/cuda_backend.h"
#endif

namespace sinklab {

absl::StatusOr<std::unique_ptr<Backend>> MakeBackend(Device device) {
  if (device == Device::kCpu) return std::unique_ptr<Backend>(new CpuBackend());
#if SINKLAB_WITH_CUDA
  if (!CudaAvailable()) {
    return absl::FailedPreconditionError("--device=cuda: no CUDA device is visible");
  }
  return std::unique_ptr<Backend>(new CudaBackend());
#else
  return absl::UnimplementedError(
      "this sinklab was built without CUDA (nvcc not found at configure time); use "
      "--device=cpu");
#endif
}

}  // namespace sinklab

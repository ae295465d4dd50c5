#include "launch/backend_factory.h"

#include "layers/cpu/cpu_backend.h"

namespace sinklab {

absl::StatusOr<std::unique_ptr<Backend>> MakeBackend(Device device) {
  if (device == Device::kCpu) return std::unique_ptr<Backend>(new CpuBackend());
  return absl::UnimplementedError(
      "the CUDA backend is not built yet (issue: CUDA backend); use --device=cpu");
}

}  // namespace sinklab

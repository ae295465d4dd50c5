#include "core/device.h"

#include "absl/strings/str_cat.h"
#include "core/log.h"

namespace sinklab {

#ifndef SINKLAB_WITH_CUDA
bool CudaAvailable() { return false; }
absl::Status CudaUsable() {
  return absl::FailedPreconditionError(
      "this binary was built without CUDA (nvcc was not found when it was configured)");
}
void SetGpuProfilerActive(bool) {}
#endif

absl::StatusOr<Device> ResolveDevice(const std::string& flag_value) {
  if (flag_value == "cpu") return Device::kCpu;
  if (flag_value == "cuda") {
    const absl::Status usable = CudaUsable();
    if (!usable.ok()) {
      return absl::FailedPreconditionError(
          absl::StrCat("--device=cuda: ", usable.message(), "; use --device=cpu or --device=auto"));
    }
    return Device::kCuda;
  }
  if (flag_value == "auto") {
    const absl::Status usable = CudaUsable();
    if (usable.ok()) return Device::kCuda;
    LogInfo(absl::StrCat("--device=auto: ", usable.message(), "; running on the CPU"));
    return Device::kCpu;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("--device: expected cpu, cuda or auto, got '", flag_value, "'"));
}

}  // namespace sinklab

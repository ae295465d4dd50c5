#include "core/device.h"

#include "absl/strings/str_cat.h"
#include "core/log.h"

namespace sinklab {

#ifndef SINKLAB_WITH_CUDA
bool CudaAvailable() { return false; }
void SetGpuProfilerActive(bool) {}
#endif

absl::StatusOr<Device> ResolveDevice(const std::string& flag_value) {
  if (flag_value == "cpu") return Device::kCpu;
  if (flag_value == "cuda") {
    if (!CudaAvailable()) {
      return absl::FailedPreconditionError(
          "--device=cuda: no usable CUDA GPU (this binary was built without CUDA, or no GPU is "
          "visible); use --device=cpu or --device=auto");
    }
    return Device::kCuda;
  }
  if (flag_value == "auto") {
    if (CudaAvailable()) return Device::kCuda;
    LogInfo("--device=auto: no CUDA GPU found, running on the CPU");
    return Device::kCpu;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("--device: expected cpu, cuda or auto, got '", flag_value, "'"));
}

}  // namespace sinklab

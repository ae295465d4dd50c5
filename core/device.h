// Where a tensor's memory lives.
#ifndef SINKLAB_CORE_DEVICE_H_
#define SINKLAB_CORE_DEVICE_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace sinklab {

enum class Device { kCpu, kCuda };

inline const char* DeviceName(Device device) { return device == Device::kCpu ? "cpu" : "cuda"; }

// True when this binary was built with CUDA and a GPU is visible.
bool CudaAvailable();

// OK when this binary was built with CUDA, a GPU is visible and every visible GPU can run the
// architectures the binary was built for (core/cuda_arch.h); else why not, as a sentence.
absl::Status CudaUsable();

// Brackets a profiled region for an external profiler started with profiling off
// (`ncu --profile-from-start off`): cudaProfilerStart/Stop; a no-op without CUDA.
void SetGpuProfilerActive(bool active);

// Resolves the --device flag: "cpu", "cuda" (an error unless CudaUsable) or "auto" (cuda
// when CudaUsable, else cpu with one log line saying why).
absl::StatusOr<Device> ResolveDevice(const std::string& flag_value);

}  // namespace sinklab

#endif  // SINKLAB_CORE_DEVICE_H_

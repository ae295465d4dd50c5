// Device memory for Arena, the CUDA-availability probes and the profiler bracket (built only
// with SINKLAB_CUDA).
#include <cuda_profiler_api.h>

#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "core/arena.h"
#include "core/cuda_arch.h"
#include "core/cuda_check.h"
#include "core/device.h"

namespace sinklab {

namespace {
int VisibleGpus() {
  int count = 0;
  return cudaGetDeviceCount(&count) == cudaSuccess ? count : 0;
}
}  // namespace

bool CudaAvailable() { return VisibleGpus() > 0; }

// Device attribute queries: no context is created, so MPI ranks that have not chosen their
// GPU yet do not each open one on GPU 0.
absl::Status CudaUsable() {
  const int count = VisibleGpus();
  if (count == 0) return absl::FailedPreconditionError("no CUDA GPU is visible");
  for (int gpu = 0; gpu < count; ++gpu) {
    int major = 0, minor = 0;
    SL_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, gpu));
    SL_CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, gpu));
    if (!CudaArchsRunOn(SINKLAB_CUDA_ARCHS, major, minor)) {
      cudaDeviceProp prop{};
      SL_CUDA_CHECK(cudaGetDeviceProperties(&prop, gpu));
      return absl::FailedPreconditionError(
          NoCudaImageMessage(gpu, prop.name, major, minor, SINKLAB_CUDA_ARCHS));
    }
  }
  return absl::OkStatus();
}

void SetGpuProfilerActive(bool active) {
  SL_CUDA_CHECK(cudaDeviceSynchronize());
  SL_CUDA_CHECK(active ? cudaProfilerStart() : cudaProfilerStop());
}

void* DeviceMalloc(Device device, size_t nbytes) {
  void* ptr = nullptr;
  if (device == Device::kCuda) {
    SL_CUDA_CHECK(cudaMalloc(&ptr, nbytes));
    return ptr;
  }
  ptr = std::aligned_alloc(256, (nbytes + 255) / 256 * 256);
  SL_CHECK_MSG(ptr != nullptr, absl::StrCat("out of host memory allocating ", nbytes, " bytes"));
  return ptr;
}

void DeviceFree(Device device, void* ptr) {
  if (device == Device::kCuda) {
    SL_CUDA_CHECK(cudaFree(ptr));
  } else {
    std::free(ptr);
  }
}

void DeviceMemsetZero(Device device, void* ptr, size_t nbytes) {
  if (device == Device::kCuda) {
    SL_CUDA_CHECK(cudaMemset(ptr, 0, nbytes));
  } else {
    std::memset(ptr, 0, nbytes);
  }
}

void CopyTensorToHost(void* host_dst, const Tensor& src) {
  if (src.device() == Device::kCuda) {
    SL_CUDA_CHECK(cudaMemcpy(host_dst, src.data(), src.nbytes(), cudaMemcpyDeviceToHost));
  } else {
    std::memcpy(host_dst, src.data(), src.nbytes());
  }
}

void CopyTensorFromHost(const Tensor& dst, const void* host_src) {
  if (dst.device() == Device::kCuda) {
    SL_CUDA_CHECK(cudaMemcpy(dst.data(), host_src, dst.nbytes(), cudaMemcpyHostToDevice));
  } else {
    std::memcpy(dst.data(), host_src, dst.nbytes());
  }
}

void QueueTensorFromHost(const Tensor& dst, const void* host_src) {
  if (dst.device() == Device::kCuda) {
    SL_CUDA_CHECK(cudaMemcpyAsync(dst.data(), host_src, dst.nbytes(), cudaMemcpyHostToDevice,
                                  /*stream=*/0));
  } else {
    std::memcpy(dst.data(), host_src, dst.nbytes());
  }
}

}  // namespace sinklab

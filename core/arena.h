// Arena: owns all memory of a model/trainer. Tensors are carved out of large blocks at
// construction time; Seal() then forbids further allocation, which is how "nothing is
// allocated inside the training loop" is enforced (an Allocate after Seal is a CHECK failure).
#ifndef SINKLAB_CORE_ARENA_H_
#define SINKLAB_CORE_ARENA_H_

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <vector>

#include "core/tensor.h"

namespace sinklab {

class Arena {
 public:
  explicit Arena(Device device = Device::kCpu, size_t block_bytes = size_t{64} << 20);
  ~Arena();
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;

  // A zero-filled tensor of the given shape, aligned to 256 bytes.
  Tensor Allocate(DType dtype, std::initializer_list<int64_t> shape);
  Tensor Allocate(DType dtype, const int64_t* shape, int rank);

  void Seal() { sealed_ = true; }
  bool sealed() const { return sealed_; }
  Device device() const { return device_; }
  size_t bytes_used() const { return bytes_used_; }

 private:
  struct Block {
    char* base;
    size_t size;
    size_t used;
  };
  void* AllocateBytes(size_t nbytes);

  Device device_;
  size_t block_bytes_;
  std::vector<Block> blocks_;
  size_t bytes_used_ = 0;
  bool sealed_ = false;
};

// Device memory primitives used by Arena (core/cuda_memory.cu when built with CUDA;
// without it they fail with a clear CHECK).
void* DeviceMalloc(Device device, size_t nbytes);
void DeviceFree(Device device, void* ptr);
void DeviceMemsetZero(Device device, void* ptr, size_t nbytes);

// Synchronous copies between a tensor on any device and plain host memory of t.nbytes()
// (checkpoints, weight files): a memcpy on the CPU; on a GPU a cudaMemcpy, which waits for
// the kernels queued before it.
void CopyTensorToHost(void* host_dst, const Tensor& src);
void CopyTensorFromHost(const Tensor& dst, const void* host_src);
// The same without a host wait: on a GPU a cudaMemcpyAsync on the legacy default stream,
// so it runs after the work queued before it on every blocking stream and before the work
// queued after it; host_src may be reused when it returns (pageable memory is staged by the
// driver before the call returns). For inputs a step reads (training batches).
void QueueTensorFromHost(const Tensor& dst, const void* host_src);

// The bytes of `t` readable on the host: t.data() itself on the CPU, else a copy made into
// `storage`.
const void* HostBytes(const Tensor& t, std::vector<char>* storage);

}  // namespace sinklab

#endif  // SINKLAB_CORE_ARENA_H_

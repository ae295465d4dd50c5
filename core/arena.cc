#include "core/arena.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace sinklab {
namespace {
constexpr size_t kAlignment = 256;
size_t AlignUp(size_t n) { return (n + kAlignment - 1) / kAlignment * kAlignment; }
}  // namespace

#ifndef SINKLAB_WITH_CUDA
void* DeviceMalloc(Device device, size_t nbytes) {
  SL_CHECK_MSG(device == Device::kCpu, "this binary was built without CUDA");
  void* ptr = std::aligned_alloc(kAlignment, AlignUp(std::max<size_t>(nbytes, 1)));
  SL_CHECK_MSG(ptr != nullptr, absl::StrCat("out of host memory allocating ", nbytes, " bytes"));
  return ptr;
}
void DeviceFree(Device device, void* ptr) { std::free(ptr); }
void DeviceMemsetZero(Device device, void* ptr, size_t nbytes) { std::memset(ptr, 0, nbytes); }
void CopyTensorToHost(void* host_dst, const Tensor& src) {
  SL_CHECK_MSG(src.device() == Device::kCpu, "this binary was built without CUDA");
  std::memcpy(host_dst, src.data(), src.nbytes());
}
void CopyTensorFromHost(const Tensor& dst, const void* host_src) {
  SL_CHECK_MSG(dst.device() == Device::kCpu, "this binary was built without CUDA");
  std::memcpy(dst.data(), host_src, dst.nbytes());
}
void QueueTensorFromHost(const Tensor& dst, const void* host_src) {
  CopyTensorFromHost(dst, host_src);
}
#endif

const void* HostBytes(const Tensor& t, std::vector<char>* storage) {
  if (t.device() == Device::kCpu) return t.data();
  storage->resize(t.nbytes());
  CopyTensorToHost(storage->data(), t);
  return storage->data();
}

Arena::Arena(Device device, size_t block_bytes) : device_(device), block_bytes_(block_bytes) {}

Arena::~Arena() {
  for (Block& block : blocks_) DeviceFree(device_, block.base);
}

void* Arena::AllocateBytes(size_t nbytes) {
  SL_CHECK_MSG(!sealed_, "Arena::Allocate after Seal(): allocation inside the training loop");
  nbytes = AlignUp(std::max<size_t>(nbytes, 1));
  if (blocks_.empty() || blocks_.back().used + nbytes > blocks_.back().size) {
    const size_t size = std::max(nbytes, block_bytes_);
    char* base = static_cast<char*>(DeviceMalloc(device_, size));
    DeviceMemsetZero(device_, base, size);
    blocks_.push_back(Block{base, size, 0});
  }
  Block& block = blocks_.back();
  void* ptr = block.base + block.used;
  block.used += nbytes;
  bytes_used_ += nbytes;
  return ptr;
}

Tensor Arena::Allocate(DType dtype, std::initializer_list<int64_t> shape) {
  return Allocate(dtype, shape.begin(), static_cast<int>(shape.size()));
}

Tensor Arena::Allocate(DType dtype, const int64_t* shape, int rank) {
  Tensor view(nullptr, dtype, device_, shape, rank);
  return Tensor(AllocateBytes(view.nbytes()), dtype, device_, shape, rank);
}

}  // namespace sinklab

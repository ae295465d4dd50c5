// Tensor: a typed, contiguous (row-major, no strides) view into memory owned elsewhere
// (an Arena, a mapped file, a test's std::vector). Copying a Tensor copies the view only.
#ifndef SINKLAB_CORE_TENSOR_H_
#define SINKLAB_CORE_TENSOR_H_

#include <array>
#include <cstdint>
#include <initializer_list>
#include <string>

#include "core/device.h"
#include "core/dtype.h"
#include "core/status.h"

namespace sinklab {

class Tensor {
 public:
  static constexpr int kMaxRank = 5;

  Tensor() = default;
  Tensor(void* data, DType dtype, Device device, std::initializer_list<int64_t> shape);
  Tensor(void* data, DType dtype, Device device, const int64_t* shape, int rank);

  void* data() const { return data_; }
  DType dtype() const { return dtype_; }
  Device device() const { return device_; }
  int rank() const { return rank_; }
  int64_t dim(int i) const;  // negative i counts from the end
  int64_t numel() const;
  size_t nbytes() const { return static_cast<size_t>(numel()) * DTypeSize(dtype_); }
  bool empty() const { return data_ == nullptr; }
  std::string ShapeString() const;  // "[4, 128, 64]"

  // Typed access; checks the dtype (programmer error if wrong).
  float* f32() const;
  BF16* bf16() const;
  int32_t* i32() const;

  // The same memory seen with another shape of equal numel.
  Tensor Reshaped(std::initializer_list<int64_t> shape) const;
  // Rows [begin, end) along dim 0.
  Tensor Slice0(int64_t begin, int64_t end) const;
  // Element i along dim 0, that dim dropped: matrix i [R, C] of a [G, R, C] tensor.
  Tensor Index0(int64_t i) const;

 private:
  void* data_ = nullptr;
  DType dtype_ = DType::kF32;
  Device device_ = Device::kCpu;
  int rank_ = 0;
  std::array<int64_t, kMaxRank> shape_{};
};

}  // namespace sinklab

#endif  // SINKLAB_CORE_TENSOR_H_

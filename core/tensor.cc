#include "core/tensor.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace sinklab {

const char* DTypeName(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return "F32";
    case DType::kBF16:
      return "BF16";
    case DType::kI32:
      return "I32";
    case DType::kU16:
      return "U16";
    case DType::kU32:
      return "U32";
  }
  return "?";
}

Tensor::Tensor(void* data, DType dtype, Device device, std::initializer_list<int64_t> shape)
    : Tensor(data, dtype, device, shape.begin(), static_cast<int>(shape.size())) {}

Tensor::Tensor(void* data, DType dtype, Device device, const int64_t* shape, int rank)
    : data_(data), dtype_(dtype), device_(device), rank_(rank) {
  SL_CHECK_MSG(rank >= 0 && rank <= kMaxRank, absl::StrCat("rank ", rank));
  for (int i = 0; i < rank; ++i) {
    SL_CHECK_MSG(shape[i] >= 0, absl::StrCat("negative dim ", shape[i]));
    shape_[i] = shape[i];
  }
}

int64_t Tensor::dim(int i) const {
  if (i < 0) i += rank_;
  SL_CHECK_MSG(i >= 0 && i < rank_, absl::StrCat("dim ", i, " of rank ", rank_));
  return shape_[i];
}

int64_t Tensor::numel() const {
  int64_t n = 1;
  for (int i = 0; i < rank_; ++i) n *= shape_[i];
  return n;
}

std::string Tensor::ShapeString() const {
  return absl::StrCat("[", absl::StrJoin(shape_.begin(), shape_.begin() + rank_, ", "), "]");
}

float* Tensor::f32() const {
  SL_CHECK_MSG(dtype_ == DType::kF32, DTypeName(dtype_));
  return static_cast<float*>(data_);
}
BF16* Tensor::bf16() const {
  SL_CHECK_MSG(dtype_ == DType::kBF16, DTypeName(dtype_));
  return static_cast<BF16*>(data_);
}
int32_t* Tensor::i32() const {
  SL_CHECK_MSG(dtype_ == DType::kI32, DTypeName(dtype_));
  return static_cast<int32_t*>(data_);
}

Tensor Tensor::Reshaped(std::initializer_list<int64_t> shape) const {
  Tensor out(data_, dtype_, device_, shape);
  SL_CHECK_MSG(out.numel() == numel(), absl::StrCat(ShapeString(), " -> ", out.ShapeString()));
  return out;
}

Tensor Tensor::Slice0(int64_t begin, int64_t end) const {
  SL_CHECK(rank_ >= 1 && 0 <= begin && begin <= end && end <= shape_[0]);
  Tensor out = *this;
  const int64_t row = shape_[0] == 0 ? 0 : numel() / shape_[0];
  out.data_ = static_cast<char*>(data_) + begin * row * DTypeSize(dtype_);
  out.shape_[0] = end - begin;
  return out;
}

Tensor Tensor::Index0(int64_t i) const {
  SL_CHECK(rank_ >= 2);
  Tensor out = Slice0(i, i + 1);
  for (int d = 1; d < rank_; ++d) out.shape_[d - 1] = shape_[d];
  out.shape_[rank_ - 1] = 0;
  out.rank_ = rank_ - 1;
  return out;
}

}  // namespace sinklab

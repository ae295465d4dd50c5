#include "optim/flat_view.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/status.h"

namespace sinklab {

FlatView::FlatView(std::vector<Tensor> tensors) : tensors_(std::move(tensors)) {
  for (const Tensor& t : tensors_) {
    SL_CHECK_MSG(t.dtype() == DType::kF32 && t.device() == Device::kCpu && !t.empty(),
                 absl::StrCat("FlatView takes fp32 CPU tensors, got ", DTypeName(t.dtype()),
                              " on ", DeviceName(t.device())));
    offsets_.push_back(offsets_.back() + t.numel());
  }
}

size_t FlatView::FirstTensorAt(int64_t position) const {
  // offsets_ is non-decreasing; the tensor holding `position` is the last one starting at or
  // before it (empty tensors are skipped by ForEachPiece).
  const auto it = std::upper_bound(offsets_.begin(), offsets_.end(), position);
  return it == offsets_.begin() ? 0 : static_cast<size_t>(it - offsets_.begin() - 1);
}

void FlatView::CopyOut(int64_t begin, int64_t count, float* out) const {
  SL_CHECK_MSG(begin >= 0 && count >= 0, absl::StrCat("begin=", begin, " count=", count));
  ForEachPiece(begin, begin + count, [&](size_t i, int64_t first, int64_t flat, int64_t n) {
    std::memcpy(out + (flat - begin), tensors_[i].f32() + first, n * sizeof(float));
  });
  const int64_t real_end = std::max(begin, std::min(begin + count, size()));
  std::fill(out + (real_end - begin), out + count, 0.0f);
}

void FlatView::CopyIn(int64_t begin, int64_t count, const float* in) const {
  SL_CHECK_MSG(begin >= 0 && count >= 0, absl::StrCat("begin=", begin, " count=", count));
  ForEachPiece(begin, begin + count, [&](size_t i, int64_t first, int64_t flat, int64_t n) {
    std::memcpy(tensors_[i].f32() + first, in + (flat - begin), n * sizeof(float));
  });
}

}  // namespace sinklab

#include "optim/flat_view.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/status.h"

#if SINKLAB_WITH_CUDA
#include <cuda_runtime.h>

#include "core/cuda_check.h"
#endif

namespace sinklab {

FlatView::FlatView(std::vector<Tensor> tensors, Device buffer_device)
    : tensors_(std::move(tensors)), buffers_on_device_(buffer_device != Device::kCpu) {
  on_device_ = buffers_on_device_;
  for (const Tensor& t : tensors_) {
    SL_CHECK_MSG(t.dtype() == DType::kF32 && !t.empty() && t.device() == tensors_[0].device(),
                 absl::StrCat("FlatView takes non-empty fp32 tensors on one device, got ",
                              DTypeName(t.dtype()), " ", t.ShapeString(), " on ",
                              DeviceName(t.device())));
    on_device_ = on_device_ || t.device() != Device::kCpu;
    offsets_.push_back(offsets_.back() + t.numel());
  }
#if !SINKLAB_WITH_CUDA
  SL_CHECK_MSG(!on_device_, "FlatView: device memory in a build without CUDA");
#endif
}

void FlatView::Copy(float* dst, const float* src, int64_t count) const {
  if (!on_device_) {
    std::memcpy(dst, src, count * sizeof(float));
    return;
  }
#if SINKLAB_WITH_CUDA
  SL_CUDA_CHECK(cudaMemcpyAsync(dst, src, count * sizeof(float), cudaMemcpyDefault,
                                static_cast<cudaStream_t>(stream_)));
#endif
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
    Copy(out + (flat - begin), tensors_[i].f32() + first, n);
  });
  const int64_t real_end = std::max(begin, std::min(begin + count, size()));
  const int64_t padding = begin + count - real_end;
  if (padding == 0) return;
  if (!buffers_on_device_) {
    std::fill(out + (real_end - begin), out + count, 0.0f);
    return;
  }
#if SINKLAB_WITH_CUDA
  SL_CUDA_CHECK(cudaMemsetAsync(out + (real_end - begin), 0, padding * sizeof(float),
                                static_cast<cudaStream_t>(stream_)));
#endif
}

void FlatView::CopyIn(int64_t begin, int64_t count, const float* in) const {
  SL_CHECK_MSG(begin >= 0 && count >= 0, absl::StrCat("begin=", begin, " count=", count));
  ForEachPiece(begin, begin + count, [&](size_t i, int64_t first, int64_t flat, int64_t n) {
    Copy(tensors_[i].f32() + first, in + (flat - begin), n);
  });
}

}  // namespace sinklab

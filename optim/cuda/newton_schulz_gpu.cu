#include "optim/cuda/newton_schulz_gpu.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "core/cuda_check.h"
#include "layers/cuda/gemm_lt.h"
#include "optim/newton_schulz.h"

namespace sinklab {
namespace {

Tensor View(const Tensor& buffer, int64_t rows, int64_t cols) {
  return Tensor(buffer.data(), DType::kBF16, Device::kCuda, {rows, cols});
}

void CopyAsync(const Tensor& dst, const Tensor& src) {
  SL_CUDA_CHECK(cudaMemcpyAsync(dst.data(), src.data(), src.nbytes(), cudaMemcpyDeviceToDevice,
                                /*stream=*/0));
}

}  // namespace

NewtonSchulzGpu::NewtonSchulzGpu(int64_t max_numel, int64_t max_small_dim, Arena* arena)
    : max_numel_(max_numel),
      max_small_dim_(max_small_dim),
      gemm_(std::make_unique<GemmLt>(/*stream=*/nullptr)) {
  SL_CHECK_MSG(arena->device() == Device::kCuda, "NewtonSchulzGpu needs a CUDA arena");
  y_ = arena->Allocate(DType::kBF16, {max_numel});
  gram_ = arena->Allocate(DType::kBF16, {max_small_dim * max_small_dim});
  poly_ = arena->Allocate(DType::kBF16, {max_small_dim * max_small_dim});
}

NewtonSchulzGpu::~NewtonSchulzGpu() = default;

void NewtonSchulzGpu::Run(const Tensor& x, int steps, cuda_optim::DeviceSums& sums, int slot) {
  SL_CHECK_MSG(x.rank() == 2 && x.dtype() == DType::kBF16 && x.device() == Device::kCuda,
               absl::StrCat("NewtonSchulzGpu: x ", x.ShapeString(), " must be 2-D bf16 CUDA"));
  const int64_t rows = x.dim(0), cols = x.dim(1), n = std::min(rows, cols);
  SL_CHECK_MSG(rows * cols <= max_numel_ && n <= max_small_dim_,
               absl::StrCat("NewtonSchulzGpu scratch too small for ", x.ShapeString()));
  cuda_optim::SumOfSquaresAny(x, sums, slot);
  cuda_optim::ScaleByInverseNorm(x, sums.slot(slot), kNewtonSchulzEps);
  const bool wide = rows <= cols;
  const Tensor gram = View(gram_, n, n), poly = View(poly_, n, n);
  Tensor cur = x, next = View(y_, rows, cols);
  for (int s = 0; s < steps; ++s) {
    // A = X X^T (wide) or X^T X (tall), [n, n].
    gemm_->RowMajor(gram, cur, /*trans_a=*/!wide, cur, /*trans_b=*/wide, 1.0f, 0.0f);
    // B = b A + c A A.
    CopyAsync(poly, gram);
    gemm_->RowMajor(poly, gram, false, gram, false, kNewtonSchulzC, kNewtonSchulzB);
    // X' = a X + B X (wide) or a X + X B (tall).
    CopyAsync(next, cur);
    if (wide) {
      gemm_->RowMajor(next, poly, false, cur, false, 1.0f, kNewtonSchulzA);
    } else {
      gemm_->RowMajor(next, cur, false, poly, false, 1.0f, kNewtonSchulzA);
    }
    std::swap(cur, next);
  }
  if (cur.data() != x.data()) CopyAsync(x, cur);
}

BatchedNewtonSchulzGpu::BatchedNewtonSchulzGpu(int64_t max_numel, int64_t max_gram_numel,
                                               Arena* arena)
    : max_numel_(max_numel),
      max_gram_numel_(max_gram_numel),
      gemm_(std::make_unique<GemmLt>(/*stream=*/nullptr)) {
  SL_CHECK_MSG(arena->device() == Device::kCuda, "BatchedNewtonSchulzGpu needs a CUDA arena");
  SL_CHECK_MSG(max_numel >= 0 && max_gram_numel >= 1,
               absl::StrCat("max_numel=", max_numel, " max_gram_numel=", max_gram_numel));
  if (max_numel > 0) next_ = arena->Allocate(DType::kBF16, {max_numel});
  gram_ = arena->Allocate(DType::kBF16, {max_gram_numel});
  poly_ = arena->Allocate(DType::kBF16, {max_gram_numel});
}

BatchedNewtonSchulzGpu::~BatchedNewtonSchulzGpu() = default;

Tensor BatchedNewtonSchulzGpu::Iterate(const Tensor& x, int steps) {
  SL_CHECK_MSG(x.numel() <= max_numel_,
               absl::StrCat("BatchedNewtonSchulzGpu scratch too small for ", x.ShapeString()));
  return Iterate(x, steps, next_);
}

Tensor BatchedNewtonSchulzGpu::Iterate(const Tensor& x, int steps, const Tensor& scratch) {
  SL_CHECK_MSG(
      x.rank() == 3 && x.dtype() == DType::kBF16 && x.device() == Device::kCuda,
      absl::StrCat("BatchedNewtonSchulzGpu: x ", x.ShapeString(), " must be [B, n, m] bf16 CUDA"));
  const int64_t batch = x.dim(0), n = x.dim(1), m = x.dim(2);
  SL_CHECK_MSG(n <= m, absl::StrCat("BatchedNewtonSchulzGpu: x ", x.ShapeString(),
                                    " must be wide (n <= m)"));
  SL_CHECK_MSG(batch * n * n <= max_gram_numel_,
               absl::StrCat("BatchedNewtonSchulzGpu scratch too small for ", x.ShapeString()));
  SL_CHECK_MSG(
      scratch.dtype() == DType::kBF16 && scratch.device() == Device::kCuda &&
          scratch.numel() >= x.numel() && scratch.data() != x.data(),
      absl::StrCat("BatchedNewtonSchulzGpu: scratch ", scratch.ShapeString(),
                   " must be bf16 CUDA with at least ", x.numel(), " elements, apart from x"));
  SL_CHECK_MSG(steps >= 1, absl::StrCat("steps=", steps));
  const Tensor gram(gram_.data(), DType::kBF16, Device::kCuda, {batch, n, n});
  const Tensor poly(poly_.data(), DType::kBF16, Device::kCuda, {batch, n, n});
  Tensor cur = x, next(scratch.data(), DType::kBF16, Device::kCuda, {batch, n, m});
  for (int s = 0; s < steps; ++s) {
    gemm_->RowMajorBatched(gram, cur, false, cur, true, 1.0f, 0.0f, gram);  // A = X X^T
    gemm_->RowMajorBatched(poly, gram, false, gram, false, kNewtonSchulzC, kNewtonSchulzB,
                           gram);  // B = c A A + b A
    gemm_->RowMajorBatched(next, poly, false, cur, false, 1.0f, kNewtonSchulzA,
                           cur);  // X' = B X + a X
    std::swap(cur, next);
  }
  return cur;
}

}  // namespace sinklab

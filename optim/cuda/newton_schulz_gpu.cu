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

void NewtonSchulzGpu::Run(const Tensor& x, int steps, cuda_optim::DeviceSums& sums,
                          int slot) {
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

}  // namespace sinklab

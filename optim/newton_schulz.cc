#include "optim/newton_schulz.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/status.h"
#include "optim/matrix_ops.h"

namespace sinklab {
namespace {

constexpr int64_t kParallelMinElements = int64_t{1} << 14;

}  // namespace

NewtonSchulzWorkspace::NewtonSchulzWorkspace(int64_t max_numel, int64_t max_small_dim,
                                             Arena* arena)
    : max_numel_(max_numel), max_small_dim_(max_small_dim) {
  SL_CHECK(arena != nullptr && arena->device() == Device::kCpu);
  SL_CHECK_MSG(max_small_dim >= 1 && max_small_dim * max_small_dim <= max_numel,
               absl::StrCat("max_numel=", max_numel, " max_small_dim=", max_small_dim));
  x_ = arena->Allocate(DType::kF32, {max_numel});
  y_ = arena->Allocate(DType::kF32, {max_numel});
  gram_ = arena->Allocate(DType::kF32, {max_small_dim * max_small_dim});
  poly_ = arena->Allocate(DType::kF32, {max_small_dim * max_small_dim});
}

bool NewtonSchulzWorkspace::Fits(int64_t rows, int64_t cols) const {
  return rows * cols <= max_numel_ && std::min(rows, cols) <= max_small_dim_;
}

void NewtonSchulz5(const Tensor& g, int steps, NewtonSchulzWorkspace& workspace,
                   const Tensor& out) {
  SL_CHECK_MSG(g.rank() == 2 && g.device() == Device::kCpu,
               absl::StrCat("NewtonSchulz5 takes a 2-D CPU matrix, got ", g.ShapeString()));
  SL_CHECK_MSG(out.rank() == 2 && out.dim(0) == g.dim(0) && out.dim(1) == g.dim(1),
               absl::StrCat("out ", out.ShapeString(), " for g ", g.ShapeString()));
  SL_CHECK_MSG(steps >= 1, absl::StrCat("steps=", steps));
  const int64_t rows = g.dim(0), cols = g.dim(1);
  SL_CHECK_MSG(workspace.Fits(rows, cols),
               absl::StrCat("workspace too small for ", g.ShapeString()));
  // Wide orientation [n, m], n <= m, so the Gram matrix A = X X^T is the small one.
  const bool transposed = rows > cols;
  const int64_t n = transposed ? cols : rows;
  const int64_t m = transposed ? rows : cols;
  float* x = workspace.x_.f32();
  float* y = workspace.y_.f32();
  float* gram = workspace.gram_.f32();
  float* poly = workspace.poly_.f32();

  // X = G / (||G||_F + eps) (muon.py normalizes after the transpose; the norm is the same).
  const float* g_data = g.f32();
  const float inv_norm = static_cast<float>(
      1.0 / (std::sqrt(SumOfSquaresCpu(g_data, rows * cols)) + kNewtonSchulzEps));
  if (transposed) {
    TransposeCpu(g_data, x, rows, cols);
  } else {
    std::copy(g_data, g_data + rows * cols, x);
  }
  const int64_t numel = n * m;
#pragma omp parallel for schedule(static) if (numel >= kParallelMinElements)
  for (int64_t i = 0; i < numel; ++i) x[i] *= inv_norm;

  for (int step = 0; step < steps; ++step) {
    MatMulTransposedBCpu(x, x, gram, n, m, n);  // A = X X^T
    MatMulCpu(gram, gram, poly, n, n, n);       // A A
    for (int64_t i = 0; i < n * n; ++i) {       // B = b A + c A A
      poly[i] = kNewtonSchulzB * gram[i] + kNewtonSchulzC * poly[i];
    }
    MatMulCpu(poly, x, y, n, n, m);  // B X
#pragma omp parallel for schedule(static) if (numel >= kParallelMinElements)
    for (int64_t i = 0; i < numel; ++i) y[i] = kNewtonSchulzA * x[i] + y[i];  // a X + B X
    std::swap(x, y);
  }

  if (transposed) {
    TransposeCpu(x, out.f32(), n, m);  // [n, m] = [cols, rows] back to [rows, cols]
  } else {
    std::copy(x, x + numel, out.f32());
  }
}

}  // namespace sinklab

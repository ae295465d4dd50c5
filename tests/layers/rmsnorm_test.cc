// RMSNorm: the forward formula on a hand-worked row, and gradients by finite differences.
#include <cmath>

#include "gtest/gtest.h"
#include "layers/cpu/cpu_backend.h"
#include "layers/rmsnorm.h"
#include "tests/layers/gradient_check.h"

namespace sinklab {
namespace {

TEST(RmsNormTest, ForwardMatchesHandComputedRow) {
  CpuBackend backend;
  TensorPool pool;
  // x = (1, 2, 3, 4): mean(x^2) = 30/4 = 7.5; rstd = 1/sqrt(7.5 + eps).
  Tensor x = pool.Zeros({1, 4}), w = pool.Zeros({4}), y = pool.Zeros({1, 4});
  Tensor rstd = pool.Zeros({1});
  for (int i = 0; i < 4; ++i) {
    x.f32()[i] = i + 1.0f;
    w.f32()[i] = 0.5f * (i + 1);
  }
  const float eps = 1e-5f;
  backend.RmsNormForward(y, rstd, x, w, eps);
  const double r = 1.0 / std::sqrt(7.5 + 1e-5);
  EXPECT_NEAR(rstd.f32()[0], r, 1e-6);
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(y.f32()[i], (i + 1) * r * 0.5 * (i + 1), 1e-6);
}

// L = sum(y * R); eps 1e-3, tolerance 1e-3 + 1e-2 |grad| (unit-normal inputs).
TEST(RmsNormTest, BackwardMatchesFiniteDifferences) {
  CpuBackend backend;
  Arena arena(Device::kCpu, size_t{1} << 20);
  TensorPool pool;
  RmsNorm norm(&backend, &arena, "norm", /*d_model=*/6, /*max_rows=*/8, /*eps=*/1e-5f);
  FillNormal(norm.weight()->master.f32(), 6, 1.0f, 0.5f, 3, 0);
  Tensor x = pool.Random({2, 4, 6}, 1), y = pool.Zeros({2, 4, 6});
  Tensor r = pool.Random({2, 4, 6}, 2), dx = pool.Random({2, 4, 6}, 3);
  const std::vector<float> dx0 = Values(dx);  // Backward must add to what is there
  auto loss = [&] {
    norm.Forward(y, x);
    return WeightedSum(y, r);
  };
  loss();
  norm.Backward(dx, r, x, GradWrite::kAccumulate);
  for (int64_t i = 0; i < dx.numel(); ++i) dx.f32()[i] -= dx0[i];
  ExpectGradientMatches("dx", x, dx, loss, GradCheckOptions::WithSamples(48));
  ExpectGradientMatches("dweight", norm.weight()->master, norm.weight()->grad, loss);
  // kAssign overwrites whatever dinp held (here NaN) with the same gradient.
  Tensor assigned = pool.Zeros({2, 4, 6});
  for (int64_t i = 0; i < assigned.numel(); ++i) assigned.f32()[i] = NAN;
  norm.Backward(assigned, r, x, GradWrite::kAssign);
  // (dx holds (dx0 + g) - dx0: g up to fp32 rounding of the sum.)
  for (int64_t i = 0; i < dx.numel(); ++i) EXPECT_NEAR(assigned.f32()[i], dx.f32()[i], 1e-6) << i;
}

}  // namespace
}  // namespace sinklab

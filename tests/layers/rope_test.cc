// RoPE: a hand-computed case in the Hugging Face rotate-half convention, identity at
// position 0, and the backward (inverse rotation) by finite differences.
#include <cmath>

#include "gtest/gtest.h"
#include "layers/cpu/cpu_backend.h"
#include "layers/rope.h"
#include "tests/layers/gradient_check.h"

namespace sinklab {
namespace {

// d = 4, base 10000: theta_0 = 10000^(-0/4) = 1, theta_1 = 10000^(-2/4) = 0.01. Pairs are
// (x_0, x_2) and (x_1, x_3) (rotate-half, not interleaved). With x = (1, 2, 3, 4) at
// position t:
//   x'_0 = x_0 cos(t) - x_2 sin(t)          x'_2 = x_2 cos(t) + x_0 sin(t)
//   x'_1 = x_1 cos(.01t) - x_3 sin(.01t)    x'_3 = x_3 cos(.01t) + x_1 sin(.01t)
// t = 1: cos 1 = 0.5403023, sin 1 = 0.8414710, cos .01 = 0.9999500, sin .01 = 0.0099998
// t = 2: cos 2 = -0.4161468, sin 2 = 0.9092974, cos .02 = 0.9998000, sin .02 = 0.0199987
TEST(RopeTest, MatchesHandComputedRotateHalfCase) {
  CpuBackend backend;
  Arena arena(Device::kCpu, size_t{1} << 20);
  TensorPool pool;
  Rope rope(&backend, &arena, /*seq_len=*/3, /*head_dim=*/4, /*base=*/10000.0f);
  Tensor x = pool.Zeros({1, 3, 1, 4}), y = pool.Zeros({1, 3, 1, 4});
  for (int t = 0; t < 3; ++t) {
    for (int i = 0; i < 4; ++i) x.f32()[t * 4 + i] = i + 1.0f;
  }
  rope.Forward(y, x);
  const float expected[3][4] = {{1.0f, 2.0f, 3.0f, 4.0f},
                                {-1.9841106f, 1.9599007f, 2.4623779f, 4.0197997f},
                                {-3.1440391f, 1.9196053f, -0.3391431f, 4.0391974f}};
  for (int t = 0; t < 3; ++t) {
    for (int i = 0; i < 4; ++i) {
      EXPECT_NEAR(y.f32()[t * 4 + i], expected[t][i], 2e-6) << "t=" << t << " i=" << i;
    }
  }
}

TEST(RopeTest, PositionZeroIsIdentityAndInPlaceWorks) {
  CpuBackend backend;
  Arena arena(Device::kCpu, size_t{1} << 20);
  TensorPool pool;
  Rope rope(&backend, &arena, /*seq_len=*/5, /*head_dim=*/8, /*base=*/500000.0f);
  Tensor x = pool.Random({2, 5, 3, 8}, 1);
  Tensor y = pool.Zeros({2, 5, 3, 8});
  rope.Forward(y, x);
  for (int b = 0; b < 2; ++b) {
    for (int i = 0; i < 3 * 8; ++i) {
      const int64_t at = b * 5 * 24 + i;  // position 0 of batch b
      EXPECT_EQ(y.f32()[at], x.f32()[at]);
    }
  }
  Tensor z = pool.Copy(x);
  rope.Forward(z, z);
  for (int64_t i = 0; i < x.numel(); ++i) EXPECT_EQ(z.f32()[i], y.f32()[i]);
}

// L = sum(RoPE(x) * R): linear in x, so eps 1e-3 and 1e-3 + 1e-2 |grad| are loose.
TEST(RopeTest, BackwardMatchesFiniteDifferences) {
  CpuBackend backend;
  Arena arena(Device::kCpu, size_t{1} << 20);
  TensorPool pool;
  Rope rope(&backend, &arena, /*seq_len=*/4, /*head_dim=*/6, /*base=*/10.0f);
  Tensor x = pool.Random({2, 4, 2, 6}, 1), y = pool.Zeros({2, 4, 2, 6});
  Tensor r = pool.Random({2, 4, 2, 6}, 2), dx = pool.Random({2, 4, 2, 6}, 3);
  for (int64_t i = 0; i < dx.numel(); ++i) dx.f32()[i] = NAN;  // kAssign must not read it
  auto loss = [&] {
    rope.Forward(y, x);
    return WeightedSum(y, r);
  };
  loss();
  rope.Backward(dx, r, GradWrite::kAssign);
  ExpectGradientMatches("dx", x, dx, loss, GradCheckOptions::WithSamples(96));
  // kAccumulate adds the same gradient to what is there.
  Tensor acc = pool.Random({2, 4, 2, 6}, 4);
  const Tensor acc0 = pool.Zeros({2, 4, 2, 6});
  std::copy(acc.f32(), acc.f32() + acc.numel(), acc0.f32());
  rope.Backward(acc, r, GradWrite::kAccumulate);
  for (int64_t i = 0; i < acc.numel(); ++i) {
    EXPECT_FLOAT_EQ(acc.f32()[i], acc0.f32()[i] + dx.f32()[i]) << i;
  }
}

}  // namespace
}  // namespace sinklab

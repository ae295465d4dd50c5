// Cross-entropy: a hand-worked row, ignored targets, and dlogits by finite differences.
#include <algorithm>
#include <cmath>

#include "gtest/gtest.h"
#include "layers/cpu/cpu_backend.h"
#include "layers/loss.h"
#include "tests/layers/gradient_check.h"

namespace sinklab {
namespace {

TEST(CrossEntropyTest, MatchesHandComputedRowsAndIgnoresMinusOne) {
  CpuBackend backend;
  Arena arena(Device::kCpu, size_t{1} << 20);
  TensorPool pool;
  // Row 0: logits (1, 2, 3), target 2: loss = log(e + e^2 + e^3) - 3.
  // Row 1: target -1: no loss. Row 2: logits (0, 0, 0), target 0: loss = log 3.
  Tensor logits = pool.Zeros({3, 3});
  for (int v = 0; v < 3; ++v) logits.f32()[v] = v + 1.0f;
  logits.f32()[3] = 5.0f;
  Tensor targets = pool.Ints({3}, {2, -1, 0});
  CrossEntropyLoss loss(&backend, &arena, 3);
  const double row0 = std::log(std::exp(1.0) + std::exp(2.0) + std::exp(3.0)) - 3.0;
  const double row2 = std::log(3.0);
  EXPECT_NEAR(loss.Forward(logits, targets), (row0 + row2) / 2, 1e-6);
  EXPECT_EQ(loss.losses().f32()[1], 0.0f);
  // Backward of the mean: row 2 gets (1/3 - 1, 1/3, 1/3) / 2, row 1 nothing.
  Tensor dlogits = pool.Zeros({3, 3});
  loss.Backward(dlogits, logits, targets, /*loss_scale=*/1.0f);
  EXPECT_NEAR(dlogits.f32()[6], (1.0 / 3 - 1) / 2, 1e-6);
  EXPECT_NEAR(dlogits.f32()[7], (1.0 / 3) / 2, 1e-6);
  for (int v = 3; v < 6; ++v) EXPECT_EQ(dlogits.f32()[v], 0.0f);
}

// L = loss_scale * sum(per-position losses, in double) / count, loss_scale 2.5; eps 1e-2
// (each fp32 loss carries ~2e-7 of rounding, ~1e-5 in the quotient; the truncation error
// eps^2/6 |third derivative| is < 2e-6); tolerance 1e-4 + 1e-2 |grad| (|grad| <= 2.5/5).
TEST(CrossEntropyTest, BackwardMatchesFiniteDifferences) {
  CpuBackend backend;
  Arena arena(Device::kCpu, size_t{1} << 20);
  TensorPool pool;
  Tensor logits = pool.Random({2, 3, 7}, 1, 2.0f);
  Tensor targets = pool.Ints({2, 3}, {0, 6, -1, 3, 3, 1});
  CrossEntropyLoss loss(&backend, &arena, 6);
  const float scale = 2.5f;
  const double count = 5;
  auto loss_fn = [&] {
    loss.Forward(logits, targets);
    double sum = 0;
    for (int i = 0; i < 6; ++i) sum += loss.losses().f32()[i];
    return scale * sum / count;
  };
  loss_fn();
  Tensor dlogits = pool.Zeros({2, 3, 7});
  loss.Backward(dlogits, logits, targets, scale);
  GradCheckOptions options = GradCheckOptions::WithSamples(42);
  options.eps = 1e-2f;
  options.atol = 1e-4;
  ExpectGradientMatches("dlogits", logits, dlogits, loss_fn, options);
  // In place (dlogits aliasing logits) gives the same values.
  Tensor in_place = pool.Copy(logits);
  loss.Forward(in_place, targets);
  loss.Backward(in_place, in_place, targets, scale);
  for (int64_t i = 0; i < dlogits.numel(); ++i) EXPECT_EQ(in_place.f32()[i], dlogits.f32()[i]);
}

// ForwardBackward (training's one call) gives Forward's losses and mean, and Backward's
// dlogits, in place, with no Forward before it.
TEST(CrossEntropyTest, ForwardBackwardMatchesForwardThenBackward) {
  CpuBackend backend;
  Arena arena(Device::kCpu, size_t{1} << 20);
  TensorPool pool;
  const Tensor logits = pool.Random({4, 11}, 3, 2.0f);
  const Tensor targets = pool.Ints({4}, {10, -1, 0, 5});
  CrossEntropyLoss separate(&backend, &arena, 4), fused(&backend, &arena, 4);
  Tensor dlogits = pool.Zeros({4, 11});
  const float mean = separate.Forward(logits, targets);
  separate.Backward(dlogits, logits, targets, 0.75f);
  Tensor in_place = pool.Copy(logits);
  fused.ForwardBackward(in_place, in_place, targets, 0.75f);
  EXPECT_EQ(fused.MeanLoss(targets), mean);
  for (int64_t i = 0; i < 4; ++i) EXPECT_EQ(fused.losses().f32()[i], separate.losses().f32()[i]);
  for (int64_t i = 0; i < dlogits.numel(); ++i) EXPECT_EQ(in_place.f32()[i], dlogits.f32()[i]);
  // Three counted rows: the target entry of row 0 is (softmax - 1) * 0.75 / 3.
  EXPECT_LT(in_place.f32()[10], 0.0f);
  EXPECT_GT(in_place.f32()[10], -0.25f);
}

// Backend::MeanLoss: the sum of the losses over the count of targets >= 0, all rows summed
// (ignored rows carry loss 0 from the forward); 0 when no target counts.
TEST(CrossEntropyTest, MeanLossDividesTheSumByTheCountedTargets) {
  CpuBackend backend;
  TensorPool pool;
  Tensor losses = pool.Zeros({4});
  const float values[] = {1.5f, 0.0f, 2.25f, 0.75f};
  std::copy(values, values + 4, losses.f32());
  Tensor out = pool.Random({1}, 7);
  backend.MeanLoss(out, losses, pool.Ints({4}, {3, -1, 0, 9}));
  EXPECT_FLOAT_EQ(out.f32()[0], 4.5f / 3.0f);
  backend.MeanLoss(out, losses, pool.Ints({4}, {-1, -1, -1, -1}));
  EXPECT_EQ(out.f32()[0], 0.0f);
}

}  // namespace
}  // namespace sinklab

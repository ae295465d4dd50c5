#include "optim/clip.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/rng.h"
#include "gtest/gtest.h"
#include "tests/optim/parameter_store.h"

namespace sinklab {
namespace {

TEST(ClipTest, GlobalNormIsL2OverAllParameters) {
  // [1, 2, 2] and [4]: sqrt(1 + 4 + 4 + 16) = 5.
  ParameterStore store;
  ParameterStore::Fill(store.Add("a", ParamKind::kMatrix, {3})->grad, {1.0f, 2.0f, -2.0f});
  ParameterStore::Fill(store.Add("b", ParamKind::kNorm, {1})->grad, {4.0f});
  EXPECT_FLOAT_EQ(GlobalGradNorm(store.all()), 5.0f);
}

TEST(ClipTest, GlobalNormAccumulatesInDouble) {
  // 1e4^2 + 1e6 * 1.4^2 = 1e8 + 1.96e6: in fp32 each 1.96 added to a sum near 1e8 is lost
  // (ulp 8), which would give a norm of 10000 instead of 10097.5.
  ParameterStore store;
  Parameter* big = store.Add("big", ParamKind::kMatrix, {1});
  Parameter* small = store.Add("small", ParamKind::kMatrix, {1000000});
  big->grad.f32()[0] = 1e4f;
  std::fill(small->grad.f32(), small->grad.f32() + small->grad.numel(), 1.4f);
  const double s = 1.4f;
  EXPECT_FLOAT_EQ(GlobalGradNorm(store.all()), std::sqrt(1e8 + 1e6 * s * s));
}

TEST(ClipTest, ClipScalesToMaxNormKeepingDirectionAndReturnsPreClipNorm) {
  ParameterStore store;
  Parameter* a = store.Add("a", ParamKind::kMatrix, {200, 100});  // OpenMP path
  Parameter* b = store.Add("b", ParamKind::kBias, {7});
  for (Parameter* p : {a, b}) {
    for (int64_t i = 0; i < p->grad.numel(); ++i) p->grad.f32()[i] = NormalAt(1, p == b, i);
  }
  const std::vector<float> a_before = ParameterStore::Values(a->grad);
  const std::vector<float> b_before = ParameterStore::Values(b->grad);
  const float norm = GlobalGradNorm(store.all());
  ASSERT_GT(norm, 1.0f);
  EXPECT_FLOAT_EQ(ClipGradNorm(store.all(), 1.0f), norm);
  EXPECT_NEAR(GlobalGradNorm(store.all()), 1.0f, 1e-5);
  const double scale = 1.0 / (norm + 1e-6);
  for (size_t i = 0; i < a_before.size(); ++i) {
    EXPECT_NEAR(a->grad.f32()[i], a_before[i] * scale, 1e-6) << i;
  }
  for (size_t i = 0; i < b_before.size(); ++i) {
    EXPECT_NEAR(b->grad.f32()[i], b_before[i] * scale, 1e-6) << i;
  }
}

TEST(ClipTest, GradientBelowMaxNormOrWithClippingOffIsUntouched) {
  ParameterStore store;
  Parameter* a = store.Add("a", ParamKind::kMatrix, {2});
  ParameterStore::Fill(a->grad, {3.0f, 4.0f});
  EXPECT_FLOAT_EQ(ClipGradNorm(store.all(), 10.0f), 5.0f);
  EXPECT_EQ(ParameterStore::Values(a->grad), (std::vector<float>{3.0f, 4.0f}));
  EXPECT_FLOAT_EQ(ClipGradNorm(store.all(), 0.0f), 5.0f);  // 0 = off
  EXPECT_EQ(ParameterStore::Values(a->grad), (std::vector<float>{3.0f, 4.0f}));
}

TEST(ClipTest, NonFiniteNormIsReturnedAndGradientsAreNotScaled) {
  for (const float bad : {std::numeric_limits<float>::quiet_NaN(),
                          std::numeric_limits<float>::infinity()}) {
    ParameterStore store;
    Parameter* a = store.Add("a", ParamKind::kMatrix, {2});
    Parameter* b = store.Add("b", ParamKind::kMatrix, {2});
    ParameterStore::Fill(a->grad, {3.0f, 4.0f});
    ParameterStore::Fill(b->grad, {bad, 1.0f});
    const float norm = ClipGradNorm(store.all(), 1.0f);
    EXPECT_FALSE(std::isfinite(norm)) << bad;
    EXPECT_EQ(std::isnan(norm), std::isnan(bad));
    EXPECT_EQ(ParameterStore::Values(a->grad), (std::vector<float>{3.0f, 4.0f}));
    EXPECT_EQ(b->grad.f32()[1], 1.0f);
  }
}

TEST(ClipTest, ScaleAndZeroGradsTouchEveryParameter) {
  ParameterStore store;
  Parameter* a = store.Add("a", ParamKind::kMatrix, {2, 2});
  Parameter* b = store.Add("b", ParamKind::kNorm, {3});
  ParameterStore::Fill(a->grad, {1.0f, -2.0f, 3.0f, 0.5f});
  ParameterStore::Fill(b->grad, {4.0f, 0.0f, -8.0f});
  ScaleGrads(store.all(), 0.25f);
  EXPECT_EQ(ParameterStore::Values(a->grad), (std::vector<float>{0.25f, -0.5f, 0.75f, 0.125f}));
  EXPECT_EQ(ParameterStore::Values(b->grad), (std::vector<float>{1.0f, 0.0f, -2.0f}));
  ZeroGrads(store.all());
  EXPECT_EQ(ParameterStore::Values(a->grad), (std::vector<float>(4, 0.0f)));
  EXPECT_EQ(ParameterStore::Values(b->grad), (std::vector<float>(3, 0.0f)));
  EXPECT_EQ(GlobalGradNorm(store.all()), 0.0f);
}

}  // namespace
}  // namespace sinklab

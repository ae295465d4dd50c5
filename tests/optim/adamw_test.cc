#include "optim/adamw.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/rng.h"
#include "gtest/gtest.h"
#include "tests/optim/parameter_store.h"

namespace sinklab {
namespace {

constexpr size_t kArenaBytes = size_t{1} << 20;  // small: an Arena zero-fills its blocks

OptimConfig Config(float weight_decay) {
  OptimConfig config;
  config.set_weight_decay(weight_decay);
  config.set_beta1(0.9f);
  config.set_beta2(0.95f);
  config.set_eps(1e-8f);
  return config;
}

TEST(AdamWTest, FirstStepIsDecayPlusLrTimesSignOfGradient) {
  // At t = 1, m_hat = g and v_hat = g^2, so p1 = p0 (1 - lr wd) - lr g / (|g| + eps).
  // Worked by hand for lr = 0.1, wd = 0.1: 1 -> 0.99 - 0.1, -2 -> -1.98 + 0.1,
  // 0.5 -> 0.495 (zero gradient: decay only), 3 -> 2.97 - 0.1.
  ParameterStore store;
  Parameter* w = store.Add("w", ParamKind::kMatrix, {2, 2});
  ParameterStore::Fill(w->master, {1.0f, -2.0f, 0.5f, 3.0f});
  ParameterStore::Fill(w->grad, {0.5f, -0.25f, 0.0f, 4.0f});
  Arena state_arena(Device::kCpu, kArenaBytes);
  AdamW adamw(Config(0.1f), store.all(), &state_arena);
  adamw.Step(0.1f, 1);

  const std::vector<float> expected = {0.89f, -1.88f, 0.495f, 2.87f};
  const std::vector<float> got = ParameterStore::Values(w->master);
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(got[i], expected[i], 1e-6) << i;
  // m = (1 - b1) g = 0.1 g; v = (1 - b2) g^2 = 0.05 g^2.
  const std::vector<StateTensor> state = adamw.StateTensors();
  ASSERT_EQ(state.size(), 2u);
  const std::vector<float> m_expected = {0.05f, -0.025f, 0.0f, 0.4f};
  const std::vector<float> v_expected = {0.0125f, 0.003125f, 0.0f, 0.8f};
  for (int i = 0; i < 4; ++i) {
    EXPECT_FLOAT_EQ(state[0].tensor.f32()[i], m_expected[i]) << i;
    EXPECT_FLOAT_EQ(state[1].tensor.f32()[i], v_expected[i]) << i;
  }
  // The gradient is read, not modified.
  EXPECT_EQ(ParameterStore::Values(w->grad), (std::vector<float>{0.5f, -0.25f, 0.0f, 4.0f}));
}

TEST(AdamWTest, MatchesDoublePrecisionFormulaOverFiveSteps) {
  // Reference in double, in the paper's form p <- p - lr (m_hat / (sqrt(v_hat) + eps) + wd p),
  // for a decayed matrix, a norm gain that must not decay, and a matrix large enough
  // (> 16384 elements) for the OpenMP path.
  const OptimConfig config = Config(0.1f);
  ParameterStore store;
  store.Add("layers.0.attn.wq", ParamKind::kMatrix, {3, 4});
  store.Add("layers.0.attn_norm", ParamKind::kNorm, {4});
  store.Add("layers.0.mlp.w_up", ParamKind::kMatrix, {160, 128});
  const std::vector<Parameter*>& params = store.all();
  std::vector<std::vector<double>> ref_p, ref_m, ref_v;
  for (size_t k = 0; k < params.size(); ++k) {
    const int64_t n = params[k]->master.numel();
    for (int64_t i = 0; i < n; ++i) params[k]->master.f32()[i] = NormalAt(7, k, i);
    ref_p.emplace_back(params[k]->master.f32(), params[k]->master.f32() + n);
    ref_m.emplace_back(n, 0.0);
    ref_v.emplace_back(n, 0.0);
  }
  Arena state_arena(Device::kCpu, kArenaBytes);
  AdamW adamw(config, params, &state_arena);
  ASSERT_FLOAT_EQ(adamw.weight_decay(0), 0.1f);
  ASSERT_FLOAT_EQ(adamw.weight_decay(1), 0.0f);
  ASSERT_FLOAT_EQ(adamw.weight_decay(2), 0.1f);

  const double b1 = config.beta1(), b2 = config.beta2(), eps = config.eps();
  const float lrs[5] = {1e-2f, 3e-2f, 2e-2f, 5e-3f, 1e-2f};
  for (int t = 1; t <= 5; ++t) {
    for (size_t k = 0; k < params.size(); ++k) {
      const double wd = adamw.weight_decay(k) == 0.0f ? 0.0 : 0.1;
      for (int64_t i = 0; i < params[k]->grad.numel(); ++i) {
        const float grad = NormalAt(11, 100 * t + k, i);
        params[k]->grad.f32()[i] = grad;
        double& m = ref_m[k][i];
        double& v = ref_v[k][i];
        double& p = ref_p[k][i];
        m = b1 * m + (1 - b1) * grad;
        v = b2 * v + (1 - b2) * grad * grad;
        const double m_hat = m / (1 - std::pow(b1, t));
        const double v_hat = v / (1 - std::pow(b2, t));
        p = p - lrs[t - 1] * (m_hat / (std::sqrt(v_hat) + eps) + wd * p);
      }
    }
    adamw.Step(lrs[t - 1], t);
  }
  const std::vector<StateTensor> state = adamw.StateTensors();
  for (size_t k = 0; k < params.size(); ++k) {
    for (int64_t i = 0; i < params[k]->master.numel(); ++i) {
      EXPECT_NEAR(params[k]->master.f32()[i], ref_p[k][i], 2e-6) << params[k]->name << " " << i;
      EXPECT_NEAR(state[2 * k].tensor.f32()[i], ref_m[k][i], 1e-6) << i;
      EXPECT_NEAR(state[2 * k + 1].tensor.f32()[i], ref_v[k][i], 1e-6) << i;
    }
  }
  EXPECT_EQ(adamw.step(), 5);
}

TEST(AdamWTest, ZeroGradientDecaysOnlyTheKindsConfiguredToDecay) {
  // With g = 0 the Adam term is exactly 0, so p1 = p0 (1 - lr wd) = 0.95 for decayed kinds.
  for (const bool decay_vectors : {false, true}) {
    OptimConfig config = Config(0.1f);
    config.set_decay_norms(decay_vectors);
    config.set_decay_biases(decay_vectors);
    config.set_decay_embeddings(decay_vectors);
    ParameterStore store;
    Parameter* matrix = store.Add("wq", ParamKind::kMatrix, {2, 2});
    Parameter* head = store.Add("lm_head", ParamKind::kHead, {3, 2});
    Parameter* embedding = store.Add("embed", ParamKind::kEmbedding, {3, 2});
    Parameter* norm = store.Add("norm", ParamKind::kNorm, {2});
    Parameter* bias = store.Add("bias", ParamKind::kBias, {2});
    for (Parameter* param : store.all()) {
      std::fill(param->master.f32(), param->master.f32() + param->master.numel(), 1.0f);
    }
    Arena state_arena(Device::kCpu, kArenaBytes);
    AdamW adamw(config, store.all(), &state_arena);
    adamw.Step(0.5f, 1);
    const float vector_value = decay_vectors ? 0.95f : 1.0f;
    for (const Parameter* param : {matrix, head}) {
      EXPECT_FLOAT_EQ(param->master.f32()[0], 0.95f) << param->name;
    }
    for (const Parameter* param : {embedding, norm, bias}) {
      EXPECT_FLOAT_EQ(param->master.f32()[0], vector_value) << param->name << decay_vectors;
    }
  }
}

TEST(AdamWTest, BiasCorrectionMakesAConstantGradientMoveLrPerStep) {
  // Constant g: m_t = (1 - b1^t) g and v_t = (1 - b2^t) g^2, so after bias correction every
  // step moves p by lr * g / |g| = lr (without it step 1 would move 0.447 lr).
  ParameterStore store;
  Parameter* w = store.Add("w", ParamKind::kMatrix, {3});
  ParameterStore::Fill(w->master, {1.0f, 1.0f, 1.0f});
  ParameterStore::Fill(w->grad, {0.3f, -2.0f, 1e-3f});
  Arena state_arena(Device::kCpu, kArenaBytes);
  AdamW adamw(Config(0.0f), store.all(), &state_arena);
  for (int t = 1; t <= 6; ++t) {
    adamw.Step(0.01f, t);
    EXPECT_NEAR(w->master.f32()[0], 1.0f - 0.01f * t, 2e-6) << t;
    EXPECT_NEAR(w->master.f32()[1], 1.0f + 0.01f * t, 2e-6) << t;
    EXPECT_NEAR(w->master.f32()[2], 1.0f - 0.01f * t, 2e-6) << t;
  }
}

TEST(AdamWTest, StateTensorsNameEveryMomentWithItsParameterShape) {
  ParameterStore store;
  store.Add("layers.0.attn.wq", ParamKind::kMatrix, {4, 2});
  store.Add("norm", ParamKind::kNorm, {2});
  Arena state_arena(Device::kCpu, kArenaBytes);
  AdamW adamw(Config(0.1f), store.all(), &state_arena);
  EXPECT_EQ(adamw.step(), 0);
  const std::vector<StateTensor> state = adamw.StateTensors();
  ASSERT_EQ(state.size(), 4u);
  EXPECT_EQ(state[0].name, "adamw.m.layers.0.attn.wq");
  EXPECT_EQ(state[1].name, "adamw.v.layers.0.attn.wq");
  EXPECT_EQ(state[2].name, "adamw.m.norm");
  EXPECT_EQ(state[3].name, "adamw.v.norm");
  EXPECT_EQ(state[0].tensor.ShapeString(), "[4, 2]");
  EXPECT_EQ(state[1].tensor.ShapeString(), "[4, 2]");
  EXPECT_EQ(state[2].tensor.ShapeString(), "[2]");
  EXPECT_EQ(state[0].tensor.dtype(), DType::kF32);
  EXPECT_NE(state[0].tensor.data(), state[1].tensor.data());
  EXPECT_NE(state[0].tensor.data(), store.all()[0]->master.data());
  // m and v start at zero (the arena zero-fills).
  for (const StateTensor& s : state) {
    for (int64_t i = 0; i < s.tensor.numel(); ++i) EXPECT_EQ(s.tensor.f32()[i], 0.0f);
  }
  adamw.Step(1e-3f, 7);
  EXPECT_EQ(adamw.step(), 7);
}

TEST(AdamWTest, RestoredStateContinuesBitForBit) {
  // What a checkpoint does: copy master, m, v and the step into a fresh optimizer; the next
  // update must equal the uninterrupted run's exactly.
  ParameterStore store_a, store_b;
  Parameter* a = store_a.Add("w", ParamKind::kMatrix, {5, 3});
  Parameter* b = store_b.Add("w", ParamKind::kMatrix, {5, 3});
  for (int64_t i = 0; i < a->master.numel(); ++i) a->master.f32()[i] = NormalAt(3, 0, i);
  Arena arena_a(Device::kCpu, kArenaBytes), arena_b(Device::kCpu, kArenaBytes);
  AdamW adamw_a(Config(0.1f), store_a.all(), &arena_a);
  AdamW adamw_b(Config(0.1f), store_b.all(), &arena_b);
  auto set_grads = [](Parameter* p, int t) {
    for (int64_t i = 0; i < p->grad.numel(); ++i) p->grad.f32()[i] = NormalAt(5, t, i);
  };
  for (int t = 1; t <= 3; ++t) {
    set_grads(a, t);
    adamw_a.Step(2e-2f, t);
  }
  std::copy(a->master.f32(), a->master.f32() + a->master.numel(), b->master.f32());
  const std::vector<StateTensor> state_a = adamw_a.StateTensors();
  const std::vector<StateTensor> state_b = adamw_b.StateTensors();
  for (size_t k = 0; k < state_a.size(); ++k) {
    ASSERT_EQ(state_a[k].name, state_b[k].name);
    std::copy(state_a[k].tensor.f32(), state_a[k].tensor.f32() + state_a[k].tensor.numel(),
              state_b[k].tensor.f32());
  }
  adamw_b.set_step(adamw_a.step());
  set_grads(a, 4);
  set_grads(b, 4);
  adamw_a.Step(2e-2f, adamw_a.step() + 1);
  adamw_b.Step(2e-2f, adamw_b.step() + 1);
  EXPECT_EQ(ParameterStore::Values(a->master), ParameterStore::Values(b->master));
  EXPECT_EQ(adamw_b.step(), 4);
}

TEST(AdamWDeathTest, StepZeroIsRefusedBecauseStepsAreOneBased) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  ParameterStore store;
  store.Add("w", ParamKind::kMatrix, {2});
  Arena state_arena(Device::kCpu, kArenaBytes);
  AdamW adamw(Config(0.1f), store.all(), &state_arena);
  EXPECT_DEATH(adamw.Step(1e-3f, 0), "1-based");
}

}  // namespace
}  // namespace sinklab

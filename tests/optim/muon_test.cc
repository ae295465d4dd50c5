// Muon against an independent fp64 reference of the formulas in optim/muon.h (momentum,
// Nesterov, Newton-Schulz with the quintic's coefficients, scale, decoupled decay), state
// round trips, determinism, and a small least-squares problem that it must solve.
#include "optim/muon.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "core/rng.h"
#include "gtest/gtest.h"
#include "optim/newton_schulz.h"
#include "optim/schedule.h"
#include "tests/optim/parameter_store.h"

namespace sinklab {
namespace {

constexpr size_t kArenaBytes = size_t{1} << 20;

MuonConfig Config(MuonConfig::Scaling scaling, bool nesterov) {
  MuonConfig config;
  config.set_momentum(0.9f);
  config.set_nesterov(nesterov);
  config.set_ns_steps(5);
  config.set_scaling(scaling);
  return config;
}

// Newton-Schulz in double with plain loops, written from muon.py's zeropower_via_newtonschulz5.
std::vector<double> NewtonSchulzReference(std::vector<double> g, int64_t rows, int64_t cols,
                                          int steps) {
  const bool transposed = rows > cols;
  const int64_t n = transposed ? cols : rows, m = transposed ? rows : cols;
  std::vector<double> x(n * m);
  double norm = 0;
  for (double v : g) norm += v * v;
  norm = std::sqrt(norm) + 1e-7;
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t j = 0; j < cols; ++j) {
      (transposed ? x[j * m + i] : x[i * m + j]) = g[i * cols + j] / norm;
    }
  }
  const double a = 3.4445, b = -4.7750, c = 2.0315;
  for (int s = 0; s < steps; ++s) {
    std::vector<double> gram(n * n, 0.0), poly(n * n, 0.0), next(n * m, 0.0);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < n; ++j)
        for (int64_t k = 0; k < m; ++k) gram[i * n + j] += x[i * m + k] * x[j * m + k];
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < n; ++j) {
        double aa = 0;
        for (int64_t k = 0; k < n; ++k) aa += gram[i * n + k] * gram[k * n + j];
        poly[i * n + j] = b * gram[i * n + j] + c * aa;
      }
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < m; ++j) {
        double bx = 0;
        for (int64_t k = 0; k < n; ++k) bx += poly[i * n + k] * x[k * m + j];
        next[i * m + j] = a * x[i * m + j] + bx;
      }
    x = next;
  }
  std::vector<double> out(rows * cols);
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t j = 0; j < cols; ++j) {
      out[i * cols + j] = transposed ? x[j * m + i] : x[i * m + j];
    }
  }
  return out;
}

TEST(MuonTest, ScaleFollowsTheConfiguredRuleByHand) {
  // ORIGINAL: sqrt(max(1, rows / cols)); MOONSHOT: 0.2 sqrt(max(rows, cols)).
  EXPECT_FLOAT_EQ(MuonScale(MuonConfig::ORIGINAL, 2, 3), 1.0f);
  EXPECT_FLOAT_EQ(MuonScale(MuonConfig::ORIGINAL, 3, 2), std::sqrt(1.5f));
  EXPECT_FLOAT_EQ(MuonScale(MuonConfig::ORIGINAL, 512, 128), 2.0f);
  EXPECT_FLOAT_EQ(MuonScale(MuonConfig::MOONSHOT, 2, 3), 0.2f * std::sqrt(3.0f));
  EXPECT_FLOAT_EQ(MuonScale(MuonConfig::MOONSHOT, 128, 512), 0.2f * std::sqrt(512.0f));
}

TEST(MuonTest, ThreeStepsMatchADoublePrecisionReference) {
  for (const auto scaling : {MuonConfig::ORIGINAL, MuonConfig::MOONSHOT}) {
    for (const bool nesterov : {true, false}) {
      for (const auto& shape : {std::pair<int64_t, int64_t>{2, 3}, {3, 2}, {5, 5}}) {
        SCOPED_TRACE(testing::Message() << "scaling " << scaling << " nesterov " << nesterov
                                        << " " << shape.first << "x" << shape.second);
        const int64_t rows = shape.first, cols = shape.second, n = rows * cols;
        ParameterStore store;
        Parameter* w = store.Add("w", ParamKind::kMatrix, {rows, cols});
        FillNormal(w->master.f32(), n, 0.0f, 0.5f, 21, 0);
        std::vector<double> p(w->master.f32(), w->master.f32() + n), m(n, 0.0);
        const double wd = 0.1, beta = 0.9;
        const double scale = scaling == MuonConfig::ORIGINAL
                                 ? std::sqrt(std::max(1.0, static_cast<double>(rows) / cols))
                                 : 0.2 * std::sqrt(static_cast<double>(std::max(rows, cols)));
        Arena arena(Device::kCpu, kArenaBytes);
        Muon muon(Config(scaling, nesterov), store.all(), {0.1f}, &arena);
        const float lrs[3] = {0.05f, 0.02f, 0.03f};
        for (int t = 1; t <= 3; ++t) {
          FillNormal(w->grad.f32(), n, 0.0f, 1.0f, 22, t);
          std::vector<double> u(n);
          for (int64_t i = 0; i < n; ++i) {
            const double g = w->grad.f32()[i];
            m[i] = beta * m[i] + (1 - beta) * g;
            u[i] = nesterov ? (1 - beta) * g + beta * m[i] : m[i];
          }
          const std::vector<double> x = NewtonSchulzReference(u, rows, cols, 5);
          for (int64_t i = 0; i < n; ++i) {
            p[i] = p[i] * (1 - lrs[t - 1] * wd) - lrs[t - 1] * scale * x[i];
          }
          muon.Step(lrs[t - 1], t);
        }
        const Tensor m_state = muon.StateTensors()[0].tensor;
        for (int64_t i = 0; i < n; ++i) {
          EXPECT_NEAR(w->master.f32()[i], p[i], 2e-6) << i;
          EXPECT_NEAR(m_state.f32()[i], m[i], 1e-6) << i;
        }
        EXPECT_EQ(muon.step(), 3);
      }
    }
  }
}

TEST(MuonTest, FirstStepStoresMomentumAndLeavesTheGradientAlone) {
  ParameterStore store;
  Parameter* w = store.Add("layers.0.attn.wq", ParamKind::kMatrix, {2, 3});
  Parameter* v = store.Add("layers.0.mlp.w_up", ParamKind::kMatrix, {4, 2});
  ParameterStore::Fill(w->grad, {1.0f, -2.0f, 0.5f, 0.0f, 4.0f, -1.0f});
  Arena arena(Device::kCpu, kArenaBytes);
  Muon muon(Config(MuonConfig::ORIGINAL, true), store.all(), {0.1f, 0.0f}, &arena);
  const std::vector<StateTensor> state = muon.StateTensors();
  ASSERT_EQ(state.size(), 2u);
  EXPECT_EQ(state[0].name, "muon.m.layers.0.attn.wq");
  EXPECT_EQ(state[1].name, "muon.m.layers.0.mlp.w_up");
  EXPECT_EQ(state[0].tensor.ShapeString(), "[2, 3]");
  EXPECT_EQ(state[1].tensor.ShapeString(), "[4, 2]");
  muon.Step(0.02f, 1);
  // m = (1 - beta) g = 0.1 g after one step from zero.
  const std::vector<float> expected = {0.1f, -0.2f, 0.05f, 0.0f, 0.4f, -0.1f};
  for (int i = 0; i < 6; ++i) EXPECT_FLOAT_EQ(state[0].tensor.f32()[i], expected[i]) << i;
  EXPECT_EQ(ParameterStore::Values(w->grad),
            (std::vector<float>{1.0f, -2.0f, 0.5f, 0.0f, 4.0f, -1.0f}));
  // v has a zero gradient and no decay: untouched (NS of zero is zero).
  EXPECT_EQ(ParameterStore::Values(v->master), std::vector<float>(8, 0.0f));
}

TEST(MuonTest, RecordedUpdateSumAndSigmaMaxDescribeTheAppliedUpdate) {
  ParameterStore store;
  Parameter* w = store.Add("w", ParamKind::kMatrix, {12, 20});
  FillNormal(w->master.f32(), 240, 0.0f, 1.0f, 3, 0);
  FillNormal(w->grad.f32(), 240, 0.0f, 1.0f, 4, 0);
  const std::vector<float> before = ParameterStore::Values(w->master);
  Arena arena(Device::kCpu, kArenaBytes);
  Muon muon(Config(MuonConfig::ORIGINAL, true), store.all(), {0.0f}, &arena);
  muon.set_record_stats(true);
  muon.Step(0.1f, 1);
  double sum = 0;
  for (int i = 0; i < 240; ++i) {
    const double delta = static_cast<double>(w->master.f32()[i]) - before[i];
    sum += delta * delta;
  }
  EXPECT_NEAR(muon.last_update_sum_squares()[0], sum, 1e-12 * std::max(1.0, sum));
  // X = update / lr has singular values in the Newton-Schulz band, so ||X||_2 is in it too.
  EXPECT_GT(muon.last_sigma_max()[0], 0.6);
  EXPECT_LT(muon.last_sigma_max()[0], 1.25);
}

TEST(MuonTest, RestoredStateContinuesBitForBit) {
  ParameterStore store_a, store_b;
  Parameter* a = store_a.Add("w", ParamKind::kMatrix, {6, 4});
  Parameter* b = store_b.Add("w", ParamKind::kMatrix, {6, 4});
  FillNormal(a->master.f32(), 24, 0.0f, 1.0f, 3, 0);
  Arena arena_a(Device::kCpu, kArenaBytes), arena_b(Device::kCpu, kArenaBytes);
  Muon muon_a(Config(MuonConfig::MOONSHOT, true), store_a.all(), {0.1f}, &arena_a);
  Muon muon_b(Config(MuonConfig::MOONSHOT, true), store_b.all(), {0.1f}, &arena_b);
  for (int t = 1; t <= 3; ++t) {
    FillNormal(a->grad.f32(), 24, 0.0f, 1.0f, 5, t);
    muon_a.Step(0.01f, t);
  }
  std::copy(a->master.f32(), a->master.f32() + 24, b->master.f32());
  const Tensor m_a = muon_a.StateTensors()[0].tensor, m_b = muon_b.StateTensors()[0].tensor;
  std::copy(m_a.f32(), m_a.f32() + 24, m_b.f32());
  muon_b.set_step(muon_a.step());
  FillNormal(a->grad.f32(), 24, 0.0f, 1.0f, 5, 4);
  FillNormal(b->grad.f32(), 24, 0.0f, 1.0f, 5, 4);
  muon_a.Step(0.01f, 4);
  muon_b.Step(0.01f, 4);
  EXPECT_EQ(ParameterStore::Values(a->master), ParameterStore::Values(b->master));
}

TEST(MuonTest, StepDoesNotDependOnTheThreadCount) {
  // 200 x 100 = 20000 elements: the chunked elementwise loops and the products go parallel.
  std::vector<std::vector<float>> results;
  const int threads = omp_get_max_threads();
  for (const int count : {1, std::max(3, threads)}) {
    omp_set_num_threads(count);
    ParameterStore store;
    Parameter* w = store.Add("w", ParamKind::kMatrix, {200, 100});
    FillNormal(w->master.f32(), 20000, 0.0f, 0.1f, 6, 0);
    Arena arena(Device::kCpu, size_t{4} << 20);
    Muon muon(Config(MuonConfig::ORIGINAL, true), store.all(), {0.1f}, &arena);
    muon.set_record_stats(true);
    for (int t = 1; t <= 2; ++t) {
      FillNormal(w->grad.f32(), 20000, 0.0f, 1.0f, 7, t);
      muon.Step(0.02f, t);
    }
    results.push_back(ParameterStore::Values(w->master));
    results.back().push_back(static_cast<float>(muon.last_update_sum_squares()[0]));
  }
  omp_set_num_threads(threads);
  EXPECT_EQ(results[0], results[1]);
}

TEST(MuonTest, SolvesALeastSquaresProblem) {
  // min_W 0.5 mean_n ||W x_n - y_n||^2 with y = W* x, W* [8, 16]: gradient
  // (W X - Y) X^T / N. Muon from W = 0, cosine-decayed lr, must cut the loss 100-fold.
  const int64_t out = 8, in = 16, samples = 64;
  std::vector<float> w_star(out * in), x(in * samples);
  FillNormal(w_star.data(), out * in, 0.0f, 0.1f, 31, 0);
  FillNormal(x.data(), in * samples, 0.0f, 1.0f, 32, 0);
  ParameterStore store;
  Parameter* w = store.Add("w", ParamKind::kMatrix, {out, in});
  Arena arena(Device::kCpu, kArenaBytes);
  MuonConfig config = Config(MuonConfig::ORIGINAL, true);
  config.set_momentum(0.95f);
  Muon muon(config, store.all(), {0.0f}, &arena);
  OptimConfig schedule;
  schedule.set_warmup_steps(0);
  schedule.set_min_lr_ratio(0.0f);
  auto loss_and_grad = [&]() {
    double loss = 0;
    std::fill(w->grad.f32(), w->grad.f32() + out * in, 0.0f);
    for (int64_t s = 0; s < samples; ++s) {
      for (int64_t i = 0; i < out; ++i) {
        double r = 0;
        for (int64_t j = 0; j < in; ++j) {
          r += (static_cast<double>(w->master.f32()[i * in + j]) - w_star[i * in + j]) *
               x[j * samples + s];
        }
        loss += 0.5 * r * r / samples;
        for (int64_t j = 0; j < in; ++j) {
          w->grad.f32()[i * in + j] += static_cast<float>(r * x[j * samples + s] / samples);
        }
      }
    }
    return loss;
  };
  const int steps = 150;
  const double initial = loss_and_grad();
  double loss = initial;
  for (int step = 0; step < steps; ++step) {
    muon.Step(0.02f * LrMultiplier(schedule, step, steps), step + 1);
    loss = loss_and_grad();
  }
  EXPECT_LT(loss, initial / 100) << "initial " << initial << " final " << loss;
}

TEST(MuonDeathTest, StepZeroIsRefusedBecauseStepsAreOneBased) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  ParameterStore store;
  store.Add("w", ParamKind::kMatrix, {2, 2});
  Arena arena(Device::kCpu, kArenaBytes);
  Muon muon(Config(MuonConfig::ORIGINAL, true), store.all(), {0.0f}, &arena);
  EXPECT_DEATH(muon.Step(1e-3f, 0), "1-based");
}

}  // namespace
}  // namespace sinklab

// Causal attention: a hand-computed case, normalisation and causality properties, gradients
// by finite differences (multi-head and grouped-query, kernel and layer), determinism.
#include "layers/attention.h"

#include <omp.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "gtest/gtest.h"
#include "layers/cpu/cpu_backend.h"
#include "layers/model_dims.h"
#include "tests/layers/gradient_check.h"

namespace sinklab {
namespace {

AttentionSpec SoftmaxSpec(int64_t head_dim) {
  AttentionSpec spec;
  spec.normalizer = AttentionNormalizer::kSoftmax;
  spec.scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  return spec;
}

// T = 3, one head, d = 2, scale 1/sqrt(2). Explicit q, k, v; the expected weights are
// p_ij = exp(s_ij) / sum_{k<=i} exp(s_ik), s_ij = q_i . k_j / sqrt(2), computed here.
TEST(AttentionTest, MatchesHandComputedSingleHeadCase) {
  CpuBackend backend;
  TensorPool pool;
  const float q_values[3][2] = {{1.0f, 0.0f}, {0.5f, -1.0f}, {2.0f, 1.0f}};
  const float k_values[3][2] = {{1.0f, 1.0f}, {-1.0f, 2.0f}, {0.0f, -1.0f}};
  const float v_values[3][2] = {{1.0f, 2.0f}, {3.0f, -1.0f}, {-2.0f, 0.5f}};
  Tensor q = pool.Zeros({1, 3, 1, 2}), k = pool.Zeros({1, 3, 1, 2}), v = pool.Zeros({1, 3, 1, 2});
  std::memcpy(q.data(), q_values, sizeof(q_values));
  std::memcpy(k.data(), k_values, sizeof(k_values));
  std::memcpy(v.data(), v_values, sizeof(v_values));
  Tensor out = pool.Zeros({1, 3, 1, 2}), probs = pool.Zeros({1, 1, 3, 3});
  Tensor lse = pool.Zeros({1, 1, 3});
  backend.AttentionForward(out, probs, lse, Tensor(), q, k, v, Tensor(), SoftmaxSpec(2));

  // Row 0 sees only key 0: p_00 = 1, out_0 = v_0.
  EXPECT_FLOAT_EQ(probs.f32()[0], 1.0f);
  EXPECT_FLOAT_EQ(out.f32()[0], 1.0f);
  EXPECT_FLOAT_EQ(out.f32()[1], 2.0f);
  for (int i = 0; i < 3; ++i) {
    double s[3], sum = 0;
    for (int j = 0; j <= i; ++j) {
      s[j] = (q_values[i][0] * k_values[j][0] + q_values[i][1] * k_values[j][1]) / std::sqrt(2.0);
      sum += std::exp(s[j]);
    }
    EXPECT_NEAR(lse.f32()[i], std::log(sum), 1e-6);
    double expected_out[2] = {0, 0};
    for (int j = 0; j < 3; ++j) {
      const double p = j <= i ? std::exp(s[j]) / sum : 0.0;
      EXPECT_NEAR(probs.f32()[i * 3 + j], p, 1e-6) << i << "," << j;
      for (int c = 0; c < 2; ++c) expected_out[c] += p * v_values[j][c];
    }
    for (int c = 0; c < 2; ++c) EXPECT_NEAR(out.f32()[i * 2 + c], expected_out[c], 1e-6);
  }
  // Spot values worked by hand for row 1: s_10 = -0.5/sqrt2, s_11 = -2.5/sqrt2, so
  // p_10 = 1 / (1 + e^(-2/sqrt2)) = 0.80442; p_11 = 0.19558.
  EXPECT_NEAR(probs.f32()[3], 0.80442, 1e-5);
  EXPECT_NEAR(probs.f32()[4], 0.19558, 1e-5);
}

struct AttentionInputs {
  Tensor q, k, v, out, probs, lse;
};

AttentionInputs MakeInputs(TensorPool& pool, int64_t b, int64_t t, int64_t h, int64_t hkv,
                           int64_t d) {
  AttentionInputs in;
  in.q = pool.Random({b, t, h, d}, 1);
  in.k = pool.Random({b, t, hkv, d}, 2);
  in.v = pool.Random({b, t, hkv, d}, 3);
  in.out = pool.Zeros({b, t, h, d});
  in.probs = pool.Zeros({b, h, t, t});
  in.lse = pool.Zeros({b, h, t});
  return in;
}

TEST(AttentionTest, RowsSumToOneAreCausalAndMatchLse) {
  CpuBackend backend;
  TensorPool pool;
  const int64_t B = 2, T = 7, H = 4, Hkv = 2, d = 8;
  AttentionInputs in = MakeInputs(pool, B, T, H, Hkv, d);
  backend.AttentionForward(in.out, in.probs, in.lse, Tensor(), in.q, in.k, in.v, Tensor(),
                           SoftmaxSpec(d));
  for (int64_t bh = 0; bh < B * H; ++bh) {
    for (int64_t i = 0; i < T; ++i) {
      const float* p = in.probs.f32() + (bh * T + i) * T;
      double sum = 0;
      for (int64_t j = 0; j < T; ++j) {
        if (j > i) {
          EXPECT_EQ(p[j], 0.0f);
        }
        sum += p[j];
      }
      EXPECT_NEAR(sum, 1.0, 1e-6);
    }
  }
}

TEST(AttentionTest, FutureTokenDoesNotInfluenceEarlierOutputs) {
  CpuBackend backend;
  TensorPool pool;
  const int64_t B = 1, T = 6, H = 2, Hkv = 1, d = 4;
  AttentionInputs in = MakeInputs(pool, B, T, H, Hkv, d);
  backend.AttentionForward(in.out, in.probs, in.lse, Tensor(), in.q, in.k, in.v, Tensor(),
                           SoftmaxSpec(d));
  const std::vector<float> before = Values(in.out);
  // Change q, k and v of the last position only.
  for (Tensor* t : {&in.q, &in.k, &in.v}) {
    const int64_t row = t->numel() / T;
    for (int64_t i = (T - 1) * row; i < T * row; ++i) t->f32()[i] += 3.0f;
  }
  backend.AttentionForward(in.out, in.probs, in.lse, Tensor(), in.q, in.k, in.v, Tensor(),
                           SoftmaxSpec(d));
  const int64_t row = H * d;
  for (int64_t i = 0; i < (T - 1) * row; ++i) EXPECT_EQ(in.out.f32()[i], before[i]) << i;
  bool last_changed = false;
  for (int64_t i = (T - 1) * row; i < T * row; ++i) last_changed |= in.out.f32()[i] != before[i];
  EXPECT_TRUE(last_changed);
}

// L = sum(out * R); eps 1e-3; tolerance 1e-3 + 1e-2 |grad| (unit-normal q, k, v, R).
void CheckKernelGradients(int64_t heads, int64_t kv_heads) {
  CpuBackend backend;
  TensorPool pool;
  const int64_t B = 2, T = 5, d = 4;
  AttentionInputs in = MakeInputs(pool, B, T, heads, kv_heads, d);
  Tensor r = pool.Random({B, T, heads, d}, 9);
  const AttentionSpec spec = SoftmaxSpec(d);
  auto loss = [&] {
    backend.AttentionForward(in.out, in.probs, in.lse, Tensor(), in.q, in.k, in.v, Tensor(), spec);
    return WeightedSum(in.out, r);
  };
  loss();
  Tensor dq = pool.Zeros({B, T, heads, d}), dk = pool.Zeros({B, T, kv_heads, d});
  Tensor dv = pool.Zeros({B, T, kv_heads, d});
  backend.AttentionBackward(dq, dk, dv, Tensor(), r, in.q, in.k, in.v, Tensor(), in.out, Tensor(),
                            in.probs, in.lse, spec, GradWrite::kAccumulate);
  const GradCheckOptions options = GradCheckOptions::WithSamples(64);
  ExpectGradientMatches("dq", in.q, dq, loss, options);
  ExpectGradientMatches("dk", in.k, dk, loss, options);
  ExpectGradientMatches("dv", in.v, dv, loss, options);
}

TEST(AttentionTest, MultiHeadBackwardMatchesFiniteDifferences) { CheckKernelGradients(3, 3); }

TEST(AttentionTest, GroupedQueryBackwardMatchesFiniteDifferences) {
  CheckKernelGradients(/*heads=*/4, /*kv_heads=*/2);
  CheckKernelGradients(/*heads=*/4, /*kv_heads=*/1);
}

// The whole layer (projections, RoPE, GQA attention, output projection).
// L = sum(out * R); eps 1e-3; tolerance 1e-3 + 1e-2 |grad|.
TEST(AttentionTest, LayerBackwardMatchesFiniteDifferencesWithGqaAndRope) {
  CpuBackend backend;
  Arena arena(Device::kCpu, size_t{1} << 20);
  TensorPool pool;
  ModelConfig config;
  config.set_d_model(8);
  config.set_n_heads(4);
  config.set_n_kv_heads(2);
  const int64_t B = 2, T = 4;
  Rope rope(&backend, &arena, T, /*head_dim=*/2, /*base=*/100.0f);
  Attention attention(&backend, &arena, "attn", config, B, T, &rope);
  uint64_t stream = 20;
  for (Parameter* p : attention.parameters()) {
    FillNormal(p->master.f32(), p->master.numel(), 0.0f, 0.5f, 3, stream++);
  }
  Tensor x = pool.Random({B, T, 8}, 1), y = pool.Zeros({B, T, 8});
  Tensor r = pool.Random({B, T, 8}, 2), dx = pool.Zeros({B, T, 8});
  auto loss = [&] {
    attention.Forward(y, x, /*residual=*/Tensor());
    return WeightedSum(y, r);
  };
  loss();
  attention.Backward(dx, r, x);
  ExpectGradientMatches("dx", x, dx, loss, GradCheckOptions::WithSamples(64));
  for (Parameter* p : attention.parameters()) {
    ExpectGradientMatches(p->name, p->master, p->grad, loss);
  }
}

std::vector<float> RunAttention(int threads) {
  omp_set_num_threads(threads);
  CpuBackend backend;
  TensorPool pool;
  const int64_t B = 3, T = 33, H = 4, Hkv = 2, d = 16;
  AttentionInputs in = MakeInputs(pool, B, T, H, Hkv, d);
  backend.AttentionForward(in.out, in.probs, in.lse, Tensor(), in.q, in.k, in.v, Tensor(),
                           SoftmaxSpec(d));
  Tensor dq = pool.Zeros({B, T, H, d}), dk = pool.Zeros({B, T, Hkv, d});
  Tensor dv = pool.Zeros({B, T, Hkv, d});
  backend.AttentionBackward(dq, dk, dv, Tensor(), in.out, in.q, in.k, in.v, Tensor(), in.out,
                            Tensor(), in.probs, in.lse, SoftmaxSpec(d), GradWrite::kAccumulate);
  std::vector<float> all;
  for (const Tensor* t : {&in.out, &in.probs, &in.lse, &dq, &dk, &dv}) {
    const std::vector<float> v = Values(*t);
    all.insert(all.end(), v.begin(), v.end());
  }
  return all;
}

TEST(AttentionTest, DeterministicAcrossRunsAndThreadCounts) {
  const int saved = omp_get_max_threads();
  const std::vector<float> one = RunAttention(1), two = RunAttention(2);
  const std::vector<float> two_again = RunAttention(2), three = RunAttention(3);
  omp_set_num_threads(saved);
  EXPECT_EQ(0, std::memcmp(one.data(), two.data(), one.size() * sizeof(float)));
  EXPECT_EQ(0, std::memcmp(two.data(), two_again.data(), two.size() * sizeof(float)));
  EXPECT_EQ(0, std::memcmp(one.data(), three.data(), one.size() * sizeof(float)));
}

}  // namespace
}  // namespace sinklab

// Model: gradients of every parameter by finite differences (untied and tied embeddings),
// loss at init near ln(vocab), the parameter count formula and order, deterministic init,
// and bit-identical gradients for any thread count.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "layers/cpu/cpu_backend.h"
#include "layers/model.h"
#include "layers/model_dims.h"
#include "tests/layers/gradient_check.h"
#include "tests/layers/model_determinism.h"

namespace sinklab {
namespace {

// TinyTestModelConfig, with or without a tied head.
ModelConfig TinyConfig(bool tied) {
  ModelConfig config = TinyTestModelConfig();
  config.set_tie_embeddings(tied);
  return config;
}


void ZeroGrads(Model& model) {
  for (Parameter* p : model.parameters()) std::memset(p->grad.data(), 0, p->grad.nbytes());
}

// The loss is the model's own mean cross-entropy (a float from a double sum). Init std 0.4
// so that every gradient is well above fp32 noise; eps 1e-3; tolerance 5e-4 + 2e-2 |grad|
// (the float loss, ~2.4, carries ~2e-7 rounding: ~1e-4 of noise in a difference quotient).
void CheckModelGradients(bool tied) {
  CpuBackend backend;
  Arena arena(Device::kCpu, size_t{1} << 20);
  TensorPool pool;
  ModelConfig config = TinyConfig(tied);
  config.set_init_std(0.4f);
  const int B = 2, T = 5;
  Model model(config, B, T, &backend, &arena);
  model.InitParameters(/*seed=*/5);
  // Norm gains away from 1 so their gradients are generic too.
  for (Parameter* p : model.parameters()) {
    if (p->kind != ParamKind::kNorm) continue;
    for (int64_t i = 0; i < p->master.numel(); ++i) p->master.f32()[i] += 0.1f * (i % 3);
  }
  std::vector<int32_t> targets = RandomTokens(B * T, 11, 2);
  targets[3] = -1;  // one ignored position
  Tensor tokens_t = pool.Ints({B, T}, RandomTokens(B * T, 11, 1));
  Tensor targets_t = pool.Ints({B, T}, targets);
  auto loss = [&] { return static_cast<double>(model.Forward(tokens_t, targets_t)); };
  ZeroGrads(model);
  loss();
  model.Backward(/*loss_scale=*/1.0f);
  GradCheckOptions options = GradCheckOptions::WithSamples(16);
  options.rtol = 2e-2;
  options.atol = 5e-4;
  for (Parameter* p : model.parameters()) {
    ExpectGradientMatches(p->name, p->master, p->grad, loss, options);
  }
}

TEST(ModelTest, AllParameterGradientsMatchFiniteDifferences) { CheckModelGradients(false); }

TEST(ModelTest, TiedEmbeddingGradientsMatchFiniteDifferences) { CheckModelGradients(true); }

// Model::Backward's hook (data-parallel overlap): first_final never increases, comes once
// after the head and final norm, once per block and last as 0, and what it reports finished
// is finished: on the CPU each call follows its work, so a gradient copied when it is first
// reported must equal the one Backward leaves. Tied embeddings (the head writes
// parameters()[0] first) and prefix tokens (a parameter between embedding and blocks).
TEST(ModelTest, GradsReadyHookReportsOnlyFinishedGradients) {
  for (const bool tied : {false, true}) {
    CpuBackend backend;
    Arena arena(Device::kCpu, size_t{1} << 20);
    TensorPool pool;
    ModelConfig config = TinyConfig(tied);
    config.set_prefix_tokens(2);
    const int B = 2, T = 5;
    Model model(config, B, T, &backend, &arena);
    model.InitParameters(/*seed=*/7);
    ZeroGrads(model);
    model.Forward(pool.Ints({B, T}, RandomTokens(B * T, 11, 1)),
                  pool.Ints({B, T}, RandomTokens(B * T, 11, 2)));
    const std::vector<Parameter*>& params = model.parameters();
    std::vector<size_t> calls;
    std::vector<std::vector<float>> first_seen(params.size());
    model.Backward(1.0f, [&](size_t first_final) {
      calls.push_back(first_final);
      for (size_t i = first_final; i < params.size(); ++i) {
        if (!first_seen[i].empty()) continue;
        const float* grad = params[i]->grad.f32();
        first_seen[i].assign(grad, grad + params[i]->grad.numel());
      }
    });
    ASSERT_EQ(calls.size(), static_cast<size_t>(config.n_layers()) + 2) << "tied " << tied;
    EXPECT_EQ(calls.back(), 0u);
    EXPECT_LT(calls.front(), params.size());  // the head's gradients before the blocks'
    EXPECT_GT(calls[calls.size() - 2], 0u);   // the embeddings' only at the end
    EXPECT_TRUE(std::is_sorted(calls.rbegin(), calls.rend()));
    for (size_t i = 0; i < params.size(); ++i) {
      const float* grad = params[i]->grad.f32();
      EXPECT_EQ(first_seen[i], std::vector<float>(grad, grad + params[i]->grad.numel()))
          << params[i]->name << " (tied " << tied << ") changed after it was reported final";
    }
  }
}

// ForwardBackward (the trainer's call) is Forward then Backward: the same loss and the same
// gradient bits, with prefix tokens (their -1 targets leave the count) and an ignored target.
TEST(ModelTest, ForwardBackwardEqualsForwardThenBackward) {
  CpuBackend backend;
  Arena arena(Device::kCpu, size_t{1} << 20);
  TensorPool pool;
  ModelConfig config = TinyConfig(false);
  config.set_prefix_tokens(2);
  const int B = 2, T = 5;
  Model model(config, B, T, &backend, &arena);
  model.InitParameters(/*seed=*/9);
  std::vector<int32_t> targets = RandomTokens(B * T, 11, 4);
  targets[6] = -1;
  const Tensor tokens_t = pool.Ints({B, T}, RandomTokens(B * T, 11, 3));
  const Tensor targets_t = pool.Ints({B, T}, targets);
  ZeroGrads(model);
  const float loss = model.Forward(tokens_t, targets_t);
  model.Backward(0.5f);
  std::vector<std::vector<float>> grads;
  for (Parameter* p : model.parameters()) {
    grads.emplace_back(p->grad.f32(), p->grad.f32() + p->grad.numel());
  }
  ZeroGrads(model);
  model.ForwardBackward(tokens_t, targets_t, 0.5f);
  EXPECT_EQ(model.MeanLoss(), loss);
  Tensor on_device = pool.Random({1}, 5);  // the backend's memory: overwritten, not added to
  model.WriteMeanLoss(on_device);
  EXPECT_EQ(on_device.f32()[0], loss);
  for (size_t i = 0; i < grads.size(); ++i) {
    const Parameter* p = model.parameters()[i];
    EXPECT_EQ(std::vector<float>(p->grad.f32(), p->grad.f32() + p->grad.numel()), grads[i])
        << p->name;
  }
}

TEST(ModelTest, LossAtInitIsNearLogVocab) {
  CpuBackend backend;
  Arena arena(Device::kCpu, size_t{1} << 20);
  TensorPool pool;
  const ModelConfig config = TinyConfig(false);  // init_std 0.02
  Model model(config, 2, 5, &backend, &arena);
  model.InitParameters(1);
  Tensor tokens = pool.Ints({2, 5}, RandomTokens(10, 11, 1));
  Tensor targets = pool.Ints({2, 5}, RandomTokens(10, 11, 2));
  // Logits have std ~ 0.02 sqrt(D) = 0.06, so the loss is ln(11) + O(0.002).
  EXPECT_NEAR(model.Forward(tokens, targets), std::log(11.0), 0.02);
}

TEST(ModelTest, ParameterCountAndOrderMatchTheFormula) {
  for (bool tied : {false, true}) {
    CpuBackend backend;
    Arena arena;
    const ModelConfig config = TinyConfig(tied);
    Model model(config, 1, 3, &backend, &arena);
    const int64_t V = 11, D = 8, L = 2, H = 2, Hkv = 1, dh = 4, F = 12;
    // embed + per layer (2 norms, wq, wk, wv, wo, 3 FFN matrices) + final norm + head.
    const int64_t expected = V * D + L * (2 * D + D * H * dh + 2 * D * Hkv * dh + H * dh * D +
                                          3 * D * F) +
                             D + (tied ? 0 : V * D);
    EXPECT_EQ(model.NumParameters(), expected) << "tied=" << tied;
    std::vector<std::string> names;
    for (Parameter* p : model.parameters()) names.push_back(p->name);
    ASSERT_EQ(names.size(), tied ? 20u : 21u);
    EXPECT_EQ(names[0], "embed");
    EXPECT_EQ(names[1], "layers.0.attn_norm");
    EXPECT_EQ(names[3], "layers.0.attn.wk");
    EXPECT_EQ(model.parameters()[3]->master.dim(0), Hkv * dh);
    EXPECT_EQ(names[10], "layers.1.attn_norm");
    EXPECT_EQ(names[19], "final_norm");
    if (!tied) {
      EXPECT_EQ(names[20], "lm_head");
    }
  }
}

TEST(ModelTest, InitIsDeterministicWithScaledOutputProjectionsAndUnitNorms) {
  CpuBackend backend;
  Arena arena(Device::kCpu, size_t{1} << 20);
  ModelConfig config = TinyConfig(false);
  config.set_vocab_size(64);
  config.set_d_model(64);
  config.set_n_heads(4);
  config.set_n_kv_heads(0);
  config.set_ffn_hidden(128);
  Model a(config, 1, 4, &backend, &arena), b(config, 1, 4, &backend, &arena);
  a.InitParameters(9);
  b.InitParameters(9);
  for (size_t i = 0; i < a.parameters().size(); ++i) {
    const Parameter* p = a.parameters()[i];
    ASSERT_EQ(0, std::memcmp(p->master.data(), b.parameters()[i]->master.data(),
                             p->master.nbytes()));
    double sum_sq = 0;
    for (int64_t j = 0; j < p->master.numel(); ++j) {
      sum_sq += p->master.f32()[j] * p->master.f32()[j];
    }
    const double rms = std::sqrt(sum_sq / p->master.numel());
    const bool output = p->name.find("attn.wo") != std::string::npos ||
                        p->name.find("w_down") != std::string::npos;
    if (p->kind == ParamKind::kNorm) {
      EXPECT_EQ(rms, 1.0) << p->name;
    } else {
      // 0.02, or 0.02 / sqrt(2 * 2 layers) = 0.01 for output projections (>= 4096 samples).
      EXPECT_NEAR(rms, output ? 0.01 : 0.02, output ? 0.0007 : 0.0012) << p->name;
    }
  }
}

TEST(ModelTest, CheckModelConfigNamesBadFieldsAndAcceptsEveryVariant) {
  ModelConfig config = TinyConfig(false);
  EXPECT_TRUE(CheckModelConfig(config).ok());
  config.set_n_kv_heads(3);
  EXPECT_EQ(CheckModelConfig(config).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(CheckModelConfig(config).message().find("n_kv_heads=3"), std::string::npos);
  config = TinyConfig(false);
  config.set_n_heads(3);
  EXPECT_NE(CheckModelConfig(config).message().find("n_heads=3 does not divide d_model=8"),
            std::string::npos);
  // Every mitigation at once is buildable.
  config = TinyConfig(false);
  config.mutable_attention()->set_normalizer(AttentionConfig::SOFTPICK);
  config.mutable_attention()->set_kv_bias(true);
  config.mutable_attention()->set_qk_norm(true);
  config.mutable_attention()->mutable_gate()->set_position(GateConfig::VALUE);
  config.set_prefix_tokens(2);
  EXPECT_TRUE(CheckModelConfig(config).ok()) << CheckModelConfig(config);
  config.set_prefix_tokens(-1);
  EXPECT_NE(CheckModelConfig(config).message().find("prefix_tokens=-1"), std::string::npos);
  config.set_prefix_tokens(0);
  config.mutable_attention()->set_softpick_eps(0.0f);
  EXPECT_NE(CheckModelConfig(config).message().find("softpick_eps=0"), std::string::npos);
}

// Forward + backward of a small model with `threads`; returns the loss and every grad.

TEST(ModelTest, GradientsAreBitIdenticalForAnyThreadCount) {
  const int saved = omp_get_max_threads();
  const ModelConfig config = TinyConfig(false);
  const std::vector<float> one = LossAndGradients(config, 1);
  const std::vector<float> two = LossAndGradients(config, 2);
  const std::vector<float> three = LossAndGradients(config, 3);
  omp_set_num_threads(saved);
  ASSERT_EQ(one.size(), two.size());
  EXPECT_EQ(0, std::memcmp(one.data(), two.data(), one.size() * sizeof(float)));
  EXPECT_EQ(0, std::memcmp(one.data(), three.data(), one.size() * sizeof(float)));
}

}  // namespace
}  // namespace sinklab

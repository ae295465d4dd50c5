// The whole Model with every mitigation: finite-difference gradients of every parameter for
// each normalizer, prefix tokens alone, and everything combined; the loss counts data tokens
// only with prefix tokens; prefix positions are the same for every sequence; the parameter
// order, sink-logit init and capture; bit-identical results for any thread count.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "layers/cpu/cpu_backend.h"
#include "layers/model.h"
#include "tests/layers/gradient_check.h"
#include "tests/layers/model_determinism.h"

namespace sinklab {
namespace {

// TinyTestModelConfig plus the variant.
ModelConfig VariantConfig(const std::function<void(ModelConfig*)>& variant) {
  ModelConfig config = TinyTestModelConfig();
  variant(&config);
  return config;
}


// As ModelTest's check: the model's own mean loss, init std 0.4, norm gains and sink logits
// moved off their constant init; eps 1e-3; tolerance 5e-4 + 2e-2 |grad|.
void CheckModelGradients(ModelConfig config) {
  CpuBackend backend;
  Arena arena(Device::kCpu, size_t{1} << 20);
  TensorPool pool;
  config.set_init_std(0.4f);
  const int B = 2, T = 5;
  Model model(config, B, T, &backend, &arena);
  model.InitParameters(/*seed=*/5);
  for (Parameter* p : model.parameters()) {
    if (p->kind != ParamKind::kNorm && p->name.find("sink_logit") == std::string::npos) continue;
    for (int64_t i = 0; i < p->master.numel(); ++i) p->master.f32()[i] += 0.1f * (i % 3);
  }
  std::vector<int32_t> targets = RandomTokens(B * T, 11, 2);
  targets[3] = -1;
  Tensor tokens_t = pool.Ints({B, T}, RandomTokens(B * T, 11, 1));
  Tensor targets_t = pool.Ints({B, T}, targets);
  auto loss = [&] { return static_cast<double>(model.Forward(tokens_t, targets_t)); };
  for (Parameter* p : model.parameters()) std::memset(p->grad.data(), 0, p->grad.nbytes());
  loss();
  model.Backward(1.0f);
  GradCheckOptions options = GradCheckOptions::WithSamples(16);
  options.rtol = 2e-2;
  options.atol = 5e-4;
  for (Parameter* p : model.parameters()) {
    ExpectGradientMatches(p->name, p->master, p->grad, loss, options);
  }
}

void AllMitigations(ModelConfig* c, AttentionConfig::Normalizer normalizer,
                    GateConfig::Position position, GateConfig::Granularity granularity) {
  AttentionConfig* a = c->mutable_attention();
  a->set_normalizer(normalizer);
  a->set_kv_bias(true);
  a->set_qk_norm(true);
  a->mutable_gate()->set_position(position);
  a->mutable_gate()->set_granularity(granularity);
  c->set_prefix_tokens(2);
}

TEST(ModelVariantsTest, EachNormalizerGradientsMatchFiniteDifferences) {
  // Softpick and clipped softmax have kinks; at this seed no FD step crosses one (a
  // crossing would show as a mismatch of a few percent in one entry).
  for (auto normalizer : {AttentionConfig::SOFTMAX1, AttentionConfig::SINK_LOGIT,
                          AttentionConfig::SOFTPICK, AttentionConfig::SIGMOID,
                          AttentionConfig::CLIPPED_SOFTMAX}) {
    SCOPED_TRACE(AttentionConfig::Normalizer_Name(normalizer));
    CheckModelGradients(VariantConfig(
        [&](ModelConfig* c) { c->mutable_attention()->set_normalizer(normalizer); }));
  }
}

TEST(ModelVariantsTest, PrefixTokensGradientsMatchFiniteDifferences) {
  CheckModelGradients(VariantConfig([](ModelConfig* c) { c->set_prefix_tokens(3); }));
}

TEST(ModelVariantsTest, EverythingCombinedGradientsMatchFiniteDifferences) {
  CheckModelGradients(VariantConfig([](ModelConfig* c) {
    AllMitigations(c, AttentionConfig::SINK_LOGIT, GateConfig::SDPA_OUTPUT,
                   GateConfig::ELEMENTWISE);
  }));
  CheckModelGradients(VariantConfig([](ModelConfig* c) {
    AllMitigations(c, AttentionConfig::SIGMOID, GateConfig::VALUE, GateConfig::HEADWISE);
  }));
}

TEST(ModelVariantsTest, ParameterOrderAndSinkLogitInit) {
  CpuBackend backend;
  Arena arena(Device::kCpu, size_t{1} << 20);
  ModelConfig config = VariantConfig([](ModelConfig* c) {
    AllMitigations(c, AttentionConfig::SINK_LOGIT, GateConfig::VALUE, GateConfig::HEADWISE);
    c->mutable_attention()->set_sink_logit_init(1.5f);
  });
  Model model(config, 1, 3, &backend, &arena);
  model.InitParameters(2);
  std::vector<std::string> names;
  for (Parameter* p : model.parameters()) names.push_back(p->name);
  const std::vector<std::string> expected = {
      "embed", "prefix_embed", "layers.0.attn_norm", "layers.0.attn.wq", "layers.0.attn.wk",
      "layers.0.attn.wv", "layers.0.attn.wo", "layers.0.attn.q_norm", "layers.0.attn.k_norm",
      "layers.0.attn.sink_logit", "layers.0.attn.kv_bias_k", "layers.0.attn.kv_bias_v",
      "layers.0.attn.w_gate", "layers.0.ffn_norm", "layers.0.ffn.w_gate", "layers.0.ffn.w_up",
      "layers.0.ffn.w_down"};
  ASSERT_GE(names.size(), expected.size());
  EXPECT_EQ(std::vector<std::string>(names.begin(), names.begin() + expected.size()), expected);
  EXPECT_EQ(names.back(), "lm_head");
  for (Parameter* p : model.parameters()) {
    if (p->name.find("sink_logit") != std::string::npos) {
      EXPECT_EQ(p->kind, ParamKind::kBias);
      for (int64_t i = 0; i < p->master.numel(); ++i) EXPECT_EQ(p->master.f32()[i], 1.5f);
    }
    if (p->name == "prefix_embed") {
      EXPECT_EQ(p->kind, ParamKind::kEmbedding);
    }
    if (p->name.find("kv_bias") != std::string::npos) {
      EXPECT_EQ(p->kind, ParamKind::kBias);
    }
    if (p->name.find("attn.w_gate") != std::string::npos) {
      EXPECT_EQ(p->kind, ParamKind::kMatrix);
    }
  }
}

// With P prefix tokens the loss is the mean cross-entropy over the T data positions only,
// each predicting its own target: recomputed here in double from the captured final-norm
// output and the LM head. The P prefix rows of every layer's output are the same for every
// sequence (they see only each other), and do not change when the tokens change.
TEST(ModelVariantsTest, PrefixTokensCarryNoLossAndAreTheSameForEverySequence) {
  CpuBackend backend;
  Arena arena(Device::kCpu, size_t{1} << 20);
  TensorPool pool;
  const int B = 2, T = 4, P = 3, V = 11, D = 8;
  const ModelConfig config = VariantConfig([](ModelConfig* c) {
    c->set_prefix_tokens(P);
    c->set_init_std(0.3f);
  });
  Model model(config, B, T, &backend, &arena);
  model.InitParameters(4);
  std::vector<int32_t> targets = RandomTokens(B * T, V, 2);
  targets[1] = -1;
  Tensor tokens = pool.Ints({B, T}, RandomTokens(B * T, V, 1));
  const float loss = model.Forward(tokens, pool.Ints({B, T}, targets));
  ModelCapture capture = model.Capture();
  EXPECT_EQ(capture.prefix_tokens, P);
  EXPECT_EQ(capture.bias_keys, 0);
  EXPECT_EQ(capture.head_input.tensor.ShapeString(), "[2, 7, 8]");
  EXPECT_EQ(capture.layers[0].attention.probs.ShapeString(), "[2, 2, 7, 7]");
  const Parameter* head = model.parameters().back();
  ASSERT_EQ(head->name, "lm_head");
  double sum = 0;
  int count = 0;
  for (int b = 0; b < B; ++b) {
    for (int t = 0; t < T; ++t) {
      if (targets[b * T + t] < 0) continue;
      const float* x = capture.head_input.tensor.f32() + (b * (P + T) + P + t) * D;
      std::vector<double> logits(V);
      double max = -1e30, z = 0;
      for (int v = 0; v < V; ++v) {
        for (int c = 0; c < D; ++c) {
          logits[v] += static_cast<double>(x[c]) * head->master.f32()[v * D + c];
        }
        max = std::max(max, logits[v]);
      }
      for (double l : logits) z += std::exp(l - max);
      sum += max + std::log(z) - logits[targets[b * T + t]];
      ++count;
    }
  }
  EXPECT_EQ(count, B * T - 1);
  EXPECT_NEAR(loss, sum / count, 1e-5);
  // Prefix rows: equal across b, and unchanged by other tokens.
  const std::vector<float> before = Values(capture.layers[1].output);
  for (int i = 0; i < P * D; ++i) EXPECT_EQ(before[i], before[(P + T) * D + i]) << i;
  model.Forward(pool.Ints({B, T}, RandomTokens(B * T, V, 7)), pool.Ints({B, T}, targets));
  const std::vector<float> after = Values(model.Capture().layers[1].output);
  for (int i = 0; i < P * D; ++i) EXPECT_EQ(before[i], after[i]) << i;
}

TEST(ModelVariantsTest, CaptureNamesTheGateInputAndShapesEveryVariant) {
  CpuBackend backend;
  Arena arena(Device::kCpu, size_t{1} << 20);
  TensorPool pool;
  const ModelConfig config = VariantConfig([](ModelConfig* c) {
    AllMitigations(c, AttentionConfig::SOFTMAX1, GateConfig::SDPA_OUTPUT, GateConfig::HEADWISE);
  });
  Model model(config, 2, 3, &backend, &arena);
  model.InitParameters(1);
  model.Forward(pool.Ints({2, 3}, RandomTokens(6, 11, 1)),
                pool.Ints({2, 3}, RandomTokens(6, 11, 2)));
  const ModelCapture capture = model.Capture();
  EXPECT_EQ(capture.prefix_tokens, 2);
  EXPECT_EQ(capture.bias_keys, 1);
  ASSERT_EQ(capture.layers.size(), 2u);
  const LayerCapture& layer = capture.layers[1];
  EXPECT_EQ(layer.attention.probs.ShapeString(), "[2, 2, 5, 6]");  // S = 5, K = 6
  EXPECT_EQ(layer.attention.lse.ShapeString(), "[2, 2, 5]");
  EXPECT_EQ(layer.attention.row_stats.ShapeString(),
            absl::StrCat("[2, 2, 5, ", kAttentionRowStatFields, "]"));
  EXPECT_EQ(layer.attention.v.ShapeString(), "[2, 5, 1, 4]");
  EXPECT_EQ(layer.attention.gate.ShapeString(), "[2, 5, 2]");
  EXPECT_EQ(layer.output.ShapeString(), "[2, 5, 8]");
  std::vector<std::string> names;
  for (const NamedTensor& input : layer.linear_inputs) names.push_back(input.name);
  EXPECT_EQ(names, (std::vector<std::string>{"layers.1.attn.wq", "layers.1.attn.wk",
                                             "layers.1.attn.wv", "layers.1.attn.wo",
                                             "layers.1.attn.w_gate", "layers.1.ffn.w_gate",
                                             "layers.1.ffn.w_up", "layers.1.ffn.w_down"}));
  for (const NamedTensor& input : layer.linear_inputs) {
    EXPECT_EQ(input.tensor.numel() % 10, 0) << input.name;  // B * S = 10 rows
  }
  // Every row (query) of softmax1 sums to < 1, and every query sees the bias key.
  for (int64_t row = 0; row < 2 * 2 * 5; ++row) {
    double mass = 0;
    for (int64_t k = 0; k < 6; ++k) mass += layer.attention.probs.f32()[row * 6 + k];
    EXPECT_LT(mass, 1.0);
    EXPECT_GT(layer.attention.probs.f32()[row * 6], 0.0f);
  }
}

// Forward + backward of a model with every mitigation with `threads`; loss and all grads.
std::vector<float> RunModel(int threads, AttentionConfig::Normalizer normalizer) {
  return LossAndGradients(VariantConfig([&](ModelConfig* c) {
                            AllMitigations(c, normalizer, GateConfig::VALUE,
                                           GateConfig::ELEMENTWISE);
                          }),
                          threads);
}

TEST(ModelVariantsTest, EveryVariantIsBitIdenticalForAnyThreadCount) {
  const int saved = omp_get_max_threads();
  for (auto normalizer : {AttentionConfig::SOFTMAX, AttentionConfig::SOFTMAX1,
                          AttentionConfig::SINK_LOGIT, AttentionConfig::SOFTPICK,
                          AttentionConfig::SIGMOID, AttentionConfig::CLIPPED_SOFTMAX}) {
    const std::vector<float> one = RunModel(1, normalizer), two = RunModel(2, normalizer);
    const std::vector<float> three = RunModel(3, normalizer);
    ASSERT_EQ(one.size(), two.size());
    EXPECT_EQ(0, std::memcmp(one.data(), two.data(), one.size() * sizeof(float)))
        << AttentionConfig::Normalizer_Name(normalizer);
    EXPECT_EQ(0, std::memcmp(one.data(), three.data(), one.size() * sizeof(float)))
        << AttentionConfig::Normalizer_Name(normalizer);
  }
  omp_set_num_threads(saved);
}

}  // namespace
}  // namespace sinklab

// The attention layer's mitigations, each alone: gated attention (G1/G2 x elementwise/
// headwise), KV bias, QK-norm and the sink logit, by finite differences of the input and of
// every parameter; the headwise gate's one value per head; the variants' parameter names
// and order; the sigmoid gate and row-prepend kernels.
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "layers/attention.h"
#include "layers/cpu/cpu_backend.h"
#include "layers/model_dims.h"
#include "tests/layers/gradient_check.h"

namespace sinklab {
namespace {

// D 8, 4 heads of dim 2, 2 kv heads (tests may widen D).
ModelConfig LayerConfig(const std::function<void(AttentionConfig*)>& variant) {
  ModelConfig config;
  config.set_d_model(8);
  config.set_n_heads(4);
  config.set_n_kv_heads(2);
  variant(config.mutable_attention());
  return config;
}

// L = sum(out * R); eps 1e-3; tolerance 1e-3 + 1e-2 |grad| (weights N(0, 0.5), norms and
// gains N(1, 0.2), unit-normal x and R). At D 16 the fp32 rounding of L (128 outputs,
// ~1e-5) is ~5e-3 in a quotient with eps 1e-3, so there eps is 3e-3 and atol 3e-3.
// Returns the parameter names in order.
std::vector<std::string> CheckLayerGradients(const ModelConfig& config) {
  CpuBackend backend;
  Arena arena(Device::kCpu, size_t{1} << 20);
  TensorPool pool;
  const int64_t B = 2, T = 4, D = config.d_model();
  Rope rope(&backend, &arena, T, DimsOf(config).head_dim, /*base=*/100.0f);
  Attention attention(&backend, &arena, "attn", config, B, T, &rope);
  uint64_t stream = 20;
  std::vector<std::string> names;
  for (Parameter* p : attention.parameters()) {
    const bool norm = p->kind == ParamKind::kNorm;
    FillNormal(p->master.f32(), p->master.numel(), norm ? 1.0f : 0.0f, norm ? 0.2f : 0.5f, 3,
               stream++);
    names.push_back(p->name);
  }
  Tensor x = pool.Random({B, T, D}, 1), y = pool.Zeros({B, T, D});
  Tensor r = pool.Random({B, T, D}, 2), dx = pool.Zeros({B, T, D});
  auto loss = [&] {
    attention.Forward(y, x, /*residual=*/Tensor());
    return WeightedSum(y, r);
  };
  loss();
  attention.Backward(dx, r, x);
  GradCheckOptions options = GradCheckOptions::WithSamples(64);
  if (D > 8) {
    options.eps = 3e-3f;
    options.atol = 3e-3;
  }
  ExpectGradientMatches("dx", x, dx, loss, options);
  options.samples = 24;
  for (Parameter* p : attention.parameters()) {
    ExpectGradientMatches(p->name, p->master, p->grad, loss, options);
  }
  return names;
}

void SetGate(AttentionConfig* a, GateConfig::Position position,
             GateConfig::Granularity granularity) {
  a->mutable_gate()->set_position(position);
  a->mutable_gate()->set_granularity(granularity);
}

TEST(AttentionVariantsTest, OutputGateBackwardMatchesFiniteDifferences) {
  for (auto granularity : {GateConfig::ELEMENTWISE, GateConfig::HEADWISE}) {
    SCOPED_TRACE(GateConfig::Granularity_Name(granularity));
    const std::vector<std::string> names = CheckLayerGradients(
        LayerConfig([&](AttentionConfig* a) { SetGate(a, GateConfig::SDPA_OUTPUT, granularity); }));
    EXPECT_EQ(names.back(), "attn.w_gate");
  }
}

TEST(AttentionVariantsTest, ValueGateBackwardMatchesFiniteDifferences) {
  for (auto granularity : {GateConfig::ELEMENTWISE, GateConfig::HEADWISE}) {
    SCOPED_TRACE(GateConfig::Granularity_Name(granularity));
    CheckLayerGradients(
        LayerConfig([&](AttentionConfig* a) { SetGate(a, GateConfig::VALUE, granularity); }));
  }
}

TEST(AttentionVariantsTest, KvBiasBackwardMatchesFiniteDifferences) {
  const std::vector<std::string> names =
      CheckLayerGradients(LayerConfig([](AttentionConfig* a) { a->set_kv_bias(true); }));
  EXPECT_EQ(names, (std::vector<std::string>{"attn.wq", "attn.wk", "attn.wv", "attn.wo",
                                             "attn.kv_bias_k", "attn.kv_bias_v"}));
}

// Head dim 4 (D 16): an RMSNorm over only 2 channels is so curved that the central
// difference at eps 1e-3 is off by a few percent where |x| is small.
TEST(AttentionVariantsTest, QkNormBackwardMatchesFiniteDifferences) {
  ModelConfig config = LayerConfig([](AttentionConfig* a) { a->set_qk_norm(true); });
  config.set_d_model(16);
  const std::vector<std::string> names = CheckLayerGradients(config);
  EXPECT_EQ(names, (std::vector<std::string>{"attn.wq", "attn.wk", "attn.wv", "attn.wo",
                                             "attn.q_norm", "attn.k_norm"}));
}

TEST(AttentionVariantsTest, SinkLogitBackwardMatchesFiniteDifferences) {
  const std::vector<std::string> names = CheckLayerGradients(
      LayerConfig([](AttentionConfig* a) { a->set_normalizer(AttentionConfig::SINK_LOGIT); }));
  EXPECT_EQ(names.back(), "attn.sink_logit");
}

TEST(AttentionVariantsTest, AllLayerVariantsTogetherMatchFiniteDifferences) {
  ModelConfig config = LayerConfig([](AttentionConfig* a) {
    a->set_normalizer(AttentionConfig::SINK_LOGIT);
    a->set_kv_bias(true);
    a->set_qk_norm(true);
    SetGate(a, GateConfig::VALUE, GateConfig::HEADWISE);
  });
  config.set_d_model(16);  // head dim 4, as the QK-norm test
  const std::vector<std::string> names = CheckLayerGradients(config);
  EXPECT_EQ(names, (std::vector<std::string>{"attn.wq", "attn.wk", "attn.wv", "attn.wo",
                                             "attn.q_norm", "attn.k_norm", "attn.sink_logit",
                                             "attn.kv_bias_k", "attn.kv_bias_v", "attn.w_gate"}));
}

// A second Backward after the same Forward gives the same dx and adds the same parameter
// gradients again: no gradient buffer keeps the first pass's values (AttentionBackward
// overwrites dq, dk, dv; the buffers still accumulated into are zeroed), for each layout of
// those buffers (KV bias, G1, G2, both).
TEST(AttentionVariantsTest, RepeatedBackwardRepeatsTheGradients) {
  const std::function<void(AttentionConfig*)> variants[] = {
      [](AttentionConfig*) {},
      [](AttentionConfig* a) { a->set_kv_bias(true); },
      [](AttentionConfig* a) { SetGate(a, GateConfig::SDPA_OUTPUT, GateConfig::ELEMENTWISE); },
      [](AttentionConfig* a) { SetGate(a, GateConfig::VALUE, GateConfig::HEADWISE); },
      [](AttentionConfig* a) {
        a->set_normalizer(AttentionConfig::SINK_LOGIT);
        a->set_kv_bias(true);
        SetGate(a, GateConfig::VALUE, GateConfig::ELEMENTWISE);
      },
      [](AttentionConfig* a) {
        a->set_kv_bias(true);
        SetGate(a, GateConfig::SDPA_OUTPUT, GateConfig::HEADWISE);
      }};
  for (size_t v = 0; v < sizeof(variants) / sizeof(variants[0]); ++v) {
    SCOPED_TRACE(v);
    CpuBackend backend;
    Arena arena(Device::kCpu, size_t{1} << 20);
    TensorPool pool;
    const ModelConfig config = LayerConfig(variants[v]);
    const int64_t B = 2, T = 4, D = config.d_model();
    Rope rope(&backend, &arena, T, DimsOf(config).head_dim, /*base=*/100.0f);
    Attention attention(&backend, &arena, "attn", config, B, T, &rope);
    uint64_t stream = 20;
    for (Parameter* p : attention.parameters()) {
      FillNormal(p->master.f32(), p->master.numel(), 0.0f, 0.5f, 3, stream++);
    }
    Tensor x = pool.Random({B, T, D}, 1), y = pool.Zeros({B, T, D});
    Tensor r = pool.Random({B, T, D}, 2), dx = pool.Random({B, T, D}, 3);
    attention.Forward(y, x, /*residual=*/Tensor());
    std::vector<std::vector<float>> dxs, grads[3];
    for (int pass = 0; pass < 3; ++pass) {
      for (Parameter* p : attention.parameters()) grads[pass].push_back(Values(p->grad));
      if (pass == 2) break;
      attention.Backward(dx, r, x);
      dxs.push_back(Values(dx));
    }
    EXPECT_EQ(dxs[0], dxs[1]);
    for (size_t i = 0; i < grads[0].size(); ++i) {
      SCOPED_TRACE(attention.parameters()[i]->name);
      for (size_t j = 0; j < grads[0][i].size(); ++j) {
        const float first = grads[1][i][j] - grads[0][i][j];
        const float second = grads[2][i][j] - grads[1][i][j];
        ASSERT_NEAR(second, first, 1e-5f * (1.0f + std::fabs(first))) << j;
      }
    }
  }
}

// Shapes of what the statistics read: probs [B, H, S, 1 + S] with kv_bias, row statistics
// [B, H, S, R]; gate values [B, S, G] with G = H (G1 headwise), H d_h (G1 elementwise), Hkv
// (G2 headwise).
TEST(AttentionVariantsTest, ExposesProbsWithTheBiasKeyAndGateValuesPerGranularity) {
  CpuBackend backend;
  Arena arena(Device::kCpu, size_t{1} << 20);
  Rope rope(&backend, &arena, 3, 2, 100.0f);
  struct Case {
    GateConfig::Position position;
    GateConfig::Granularity granularity;
    int64_t gates;
  };
  for (const Case& c : {Case{GateConfig::SDPA_OUTPUT, GateConfig::HEADWISE, 4},
                        Case{GateConfig::SDPA_OUTPUT, GateConfig::ELEMENTWISE, 8},
                        Case{GateConfig::VALUE, GateConfig::HEADWISE, 2},
                        Case{GateConfig::VALUE, GateConfig::ELEMENTWISE, 4}}) {
    const ModelConfig config = LayerConfig([&](AttentionConfig* a) {
      a->set_kv_bias(true);
      SetGate(a, c.position, c.granularity);
    });
    Attention attention(&backend, &arena, "a", config, 2, 3, &rope);
    EXPECT_EQ(attention.probs().ShapeString(), "[2, 4, 3, 4]");
    EXPECT_EQ(attention.row_stats().ShapeString(),
              absl::StrCat("[2, 4, 3, ", kAttentionRowStatFields, "]"));
    EXPECT_EQ(attention.gate_values().ShapeString(), absl::StrCat("[2, 3, ", c.gates, "]"));
    EXPECT_EQ(attention.gate_weight()->master.ShapeString(), absl::StrCat("[", c.gates, ", 8]"));
    EXPECT_EQ(attention.bias_keys(), 1);
  }
}

// Headwise: one gate per (row, head), the same factor on all d channels of the head, equal
// to sigmoid(z) computed here.
TEST(AttentionVariantsTest, HeadwiseGateScalesEachHeadByOneValue) {
  CpuBackend backend;
  TensorPool pool;
  const int64_t N = 3, H = 2, d = 4;
  Tensor y = pool.Random({N, H, d}, 1), z = pool.Random({N, H}, 2, 2.0f);
  Tensor out = pool.Zeros({N, H, d}), gate = pool.Zeros({N, H});
  backend.SigmoidGateForward(out, gate, y, z);
  for (int64_t n = 0; n < N * H; ++n) {
    const double g = 1.0 / (1.0 + std::exp(-static_cast<double>(z.f32()[n])));
    EXPECT_NEAR(gate.f32()[n], g, 1e-7);
    for (int64_t c = 0; c < d; ++c) {
      EXPECT_NEAR(out.f32()[n * d + c], y.f32()[n * d + c] * g, 1e-6) << n << "," << c;
    }
  }
}

// Backward: dy = dout g, dz = g (1 - g) sum_c dout y per gate; kAssign overwrites outputs
// that start random, kAccumulate adds to them.
TEST(AttentionVariantsTest, HeadwiseGateBackwardWritesOrAddsItsGradients) {
  CpuBackend backend;
  TensorPool pool;
  const int64_t N = 3, H = 2, d = 4;
  Tensor y = pool.Random({N, H, d}, 1), gate = pool.Random({N, H}, 2);
  for (int64_t i = 0; i < gate.numel(); ++i) gate.f32()[i] = 0.5f + 0.4f * gate.f32()[i];
  Tensor dout = pool.Random({N, H, d}, 3);
  const Tensor dy0 = pool.Random({N, H, d}, 4), dz0 = pool.Random({N, H}, 5);
  for (GradWrite write : {GradWrite::kAssign, GradWrite::kAccumulate}) {
    const bool add = write == GradWrite::kAccumulate;
    Tensor dy = pool.Copy(dy0), dz = pool.Copy(dz0);
    backend.SigmoidGateBackward(dy, dz, dout, y, gate, write);
    for (int64_t n = 0; n < N * H; ++n) {
      const double g = gate.f32()[n];
      double dot = 0.0;
      for (int64_t c = 0; c < d; ++c) {
        const int64_t i = n * d + c;
        dot += static_cast<double>(dout.f32()[i]) * y.f32()[i];
        const double expected = (add ? dy0.f32()[i] : 0.0) + dout.f32()[i] * g;
        EXPECT_NEAR(dy.f32()[i], expected, 1e-6) << n << "," << c;
      }
      EXPECT_NEAR(dz.f32()[n], (add ? dz0.f32()[n] : 0.0) + g * (1.0 - g) * dot, 1e-6) << n;
    }
  }
}

// PrependRows puts the same prefix in front of every sequence; its backward sums the
// prefix gradient over the batch and passes the rest through.
TEST(AttentionVariantsTest, PrependRowsConcatenatesAndSumsThePrefixGradient) {
  CpuBackend backend;
  TensorPool pool;
  const int64_t B = 2, P = 2, S = 3, C = 2;
  Tensor prefix = pool.Random({P, C}, 1), x = pool.Random({B, S, C}, 2);
  Tensor out = pool.Zeros({B, P + S, C});
  backend.PrependRows(out, prefix, x);
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t i = 0; i < (P + S) * C; ++i) {
      const float expected = i < P * C ? prefix.f32()[i] : x.f32()[b * S * C + i - P * C];
      EXPECT_EQ(out.f32()[b * (P + S) * C + i], expected);
    }
  }
  Tensor g = pool.Random({B, P + S, C}, 3), dprefix = pool.Zeros({P, C});
  Tensor dx = pool.Zeros({B, S, C});
  backend.PrependRowsBackward(dprefix, dx, g);
  for (int64_t i = 0; i < P * C; ++i) {
    EXPECT_EQ(dprefix.f32()[i], g.f32()[i] + g.f32()[(P + S) * C + i]);
  }
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t i = 0; i < S * C; ++i) {
      EXPECT_EQ(dx.f32()[b * S * C + i], g.f32()[(b * (P + S) + P) * C + i]);
    }
  }
}

}  // namespace
}  // namespace sinklab

// StatsRunner on a tiny random CPU model: its first-token mass equals the mean of
// probs[:, h, t, 0] read directly from Model::Capture, its attention statistics (computed
// from the row statistics) equal the probs-based reference of layers/statistics.h for
// several normalizers and layouts, the remainder rows of the last batch
// are excluded (the statistics do not depend on the micro-batch), Sink^eps is a fraction,
// stats.jsonl lines parse with arrays of the right sizes, and `RunStatsOnWeights` writes one.
#include "launch/stats_runner.h"

#include <unistd.h>

#include <cmath>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "configs/config_loader.h"
#include "core/file_util.h"
#include "core/json_min.h"
#include "core/rng.h"
#include "gtest/gtest.h"
#include "launch/model_io.h"
#include "launch/stats_on_weights.h"
#include "launch/stats_writer.h"
#include "layers/cpu/cpu_backend.h"
#include "tests/layers/gradient_check.h"

namespace sinklab {
namespace {

constexpr int kSeqLen = 8;

// TinyTestModelConfig with init std 0.5, so attention is uneven.
ModelConfig TinyModel() {
  ModelConfig config = TinyTestModelConfig();
  config.set_init_std(0.5f);
  return config;
}

StatsConfig SmallStats() {
  StatsConfig stats;
  stats.set_window(4);
  stats.set_batch_size(3);  // with micro-batch 2: two forwards, the second's row 1 unused
  stats.add_eps(0.3f);
  stats.add_eps(0.5f);
  return stats;
}

std::vector<uint32_t> RandomTokens() {
  Rng rng(5, 0);
  std::vector<uint32_t> tokens(200);
  for (auto& t : tokens) t = static_cast<uint32_t>(rng.Below(11));
  return tokens;
}

// A model of `config` and micro-batch `batch` with its runner, built in the trainer's order.
struct Fixture {
  explicit Fixture(int batch, StatsConfig stats = SmallStats(),
                   const ModelConfig& config = TinyModel(), uint64_t init_seed = 9)
      : tokens(RandomTokens()),
        val(&tokens, kSeqLen, batch, /*seed=*/1, 0, 1),
        model(config, batch, kSeqLen, &backend, &arena),
        runner(stats, model, &backend, &arena) {
    arena.Seal();
    model.InitParameters(init_seed);
  }
  CpuBackend backend;
  Arena arena{Device::kCpu, size_t{1} << 20};
  std::vector<uint32_t> tokens;
  Loader val;
  Model model;
  StatsRunner runner;
};

TEST(StatsRunnerTest, FirstTokenMassIsTheMeanOfCapturedProbsOnDataTokenZero) {
  Fixture f(/*batch=*/2);
  ASSERT_EQ(f.runner.model_batches(), 2);
  const absl::StatusOr<StatsReport> report = f.runner.Compute(f.model, f.val);
  ASSERT_TRUE(report.ok()) << report.status();
  // Directly: the first 3 val sequences, mean over queries t of probs[b, h, t, 0].
  std::vector<std::vector<double>> expected(2, std::vector<double>(2, 0.0));
  std::vector<int32_t> inputs(2 * kSeqLen), targets(2 * kSeqLen);
  for (int batch = 0; batch < 2; ++batch) {
    f.val.GetEvalBatch(batch, 2, inputs.data(), targets.data());
    Tensor in(inputs.data(), DType::kI32, Device::kCpu, {2, kSeqLen});
    Tensor tg(targets.data(), DType::kI32, Device::kCpu, {2, kSeqLen});
    f.model.Forward(in, tg);
    const ModelCapture capture = f.model.Capture();
    for (int l = 0; l < 2; ++l) {
      const Tensor& probs = capture.layers[l].attention.probs;  // [2, 2, 8, 8]
      for (int b = 0; b < (batch == 0 ? 2 : 1); ++b) {
        for (int h = 0; h < 2; ++h) {
          for (int t = 0; t < kSeqLen; ++t) {
            expected[l][h] += probs.f32()[((b * 2 + h) * kSeqLen + t) * kSeqLen] / (kSeqLen * 3.0);
          }
        }
      }
    }
  }
  double mean = 0;
  for (int l = 0; l < 2; ++l) {
    for (int h = 0; h < 2; ++h) {
      EXPECT_NEAR(report->first_token_mass[l][h], expected[l][h], 1e-9) << l << " " << h;
      EXPECT_GT(report->first_token_mass[l][h], 1.0 / kSeqLen);  // row 0 alone gives 1/8
      mean += expected[l][h] / 4;
    }
  }
  EXPECT_NEAR(report->first_token_mass_mean, mean, 1e-9);
  ASSERT_EQ(report->sink.size(), 2u);
  for (const double sink : report->sink) {
    EXPECT_GE(sink, 0.0);
    EXPECT_LE(sink, 1.0);
  }
  EXPECT_LE(report->sink[1], report->sink[0]);  // a higher threshold sinks fewer heads
  for (const auto& layer : report->top3) {
    ASSERT_EQ(layer.size(), 3u);
    for (const ActivationSite& site : layer) EXPECT_LT(site.sample, 3);  // remainder excluded
  }
}

TEST(StatsRunnerTest, VariantLayoutsGiveTheirMassesAndGateMean) {
  // 2 prefix tokens, a KV-bias key, softmax1 and a headwise output gate: the runner reads
  // data token 0 at position P (key bias + P) and reports every mass that applies.
  ModelConfig config = TinyModel();
  config.set_prefix_tokens(2);
  config.mutable_attention()->set_kv_bias(true);
  config.mutable_attention()->set_normalizer(AttentionConfig::SOFTMAX1);
  config.mutable_attention()->mutable_gate()->set_position(GateConfig::SDPA_OUTPUT);
  config.mutable_attention()->mutable_gate()->set_granularity(GateConfig::HEADWISE);
  Fixture f(/*batch=*/3, SmallStats(), config, /*init_seed=*/4);
  const absl::StatusOr<StatsReport> report = f.runner.Compute(f.model, f.val);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->prefix_tokens, 2);
  EXPECT_EQ(report->bias_keys, 1);
  const ModelCapture capture = f.model.Capture();  // the same (only) batch
  const int64_t P = 2, S = P + kSeqLen, K = 1 + S;
  for (int l = 0; l < 2; ++l) {
    const float* probs = capture.layers[l].attention.probs.f32();  // [3, 2, S, K]
    for (int h = 0; h < 2; ++h) {
      double first = 0, bias = 0, prefix = 0, rest = 0;
      for (int b = 0; b < 3; ++b) {
        for (int t = 0; t < kSeqLen; ++t) {
          const float* row = probs + ((b * 2 + h) * S + P + t) * K;
          first += row[1 + P] / (3.0 * kSeqLen);
          bias += row[0] / (3.0 * kSeqLen);
          prefix += (static_cast<double>(row[1]) + row[2]) / (3.0 * kSeqLen);
          for (int j = 0; j < K; ++j) rest += row[j] / (3.0 * kSeqLen);
        }
      }
      EXPECT_NEAR(report->first_token_mass[l][h], first, 1e-9);
      EXPECT_NEAR(report->bias_mass[l][h], bias, 1e-9);
      EXPECT_NEAR(report->prefix_mass[l][h], prefix, 1e-7);  // f32 row sums
      EXPECT_NEAR(report->virtual_mass[l][h], 1.0 - rest, 1e-6);
      EXPECT_GT(report->virtual_mass[l][h], 0.0);  // softmax1 rows sum to < 1
    }
    ASSERT_EQ(report->gate_mean.size(), 2u);
    EXPECT_GT(report->gate_mean[l], 0.0);
    EXPECT_LT(report->gate_mean[l], 1.0);
  }
  bool has_gate_input = false;
  for (const auto& [name, value] : report->linear_input_max) {
    has_gate_input |= name == "layers.0.attn.w_gate";
  }
  EXPECT_TRUE(has_gate_input);
  const std::string line = StatsLineJson(5, *report);
  for (const char* key :
       {"\"prefix_mass\"", "\"bias_mass\"", "\"virtual_mass\"", "\"gate_mean\""}) {
    EXPECT_TRUE(absl::StrContains(line, key)) << key;
  }
}

// The mean over the `samples` samples of per-(sample, head) values [samples * heads].
std::vector<double> MeanOverSamples(const std::vector<double>& per_sample, int64_t heads) {
  std::vector<double> mean(heads, 0.0);
  const double samples = static_cast<double>(per_sample.size() / heads);
  for (size_t i = 0; i < per_sample.size(); ++i) mean[i % heads] += per_sample[i] / samples;
  return mean;
}

void ExpectHeadsNear(const std::vector<double>& got, const std::vector<double>& want,
                     double tol, const char* what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t h = 0; h < got.size(); ++h) EXPECT_NEAR(got[h], want[h], tol) << what << " " << h;
}

TEST(StatsRunnerTest, AttentionStatisticsEqualTheProbsReference) {
  struct Variant {
    AttentionConfig::Normalizer normalizer;
    int prefix_tokens;
    bool kv_bias;
  };
  for (const Variant& variant : {Variant{AttentionConfig::SOFTMAX, 0, false},
                                 Variant{AttentionConfig::SINK_LOGIT, 1, true},
                                 Variant{AttentionConfig::SOFTPICK, 2, false},
                                 Variant{AttentionConfig::CLIPPED_SOFTMAX, 0, true}}) {
    SCOPED_TRACE(testing::Message() << "normalizer " << variant.normalizer);
    ModelConfig config = TinyModel();
    config.set_prefix_tokens(variant.prefix_tokens);
    config.mutable_attention()->set_kv_bias(variant.kv_bias);
    config.mutable_attention()->set_normalizer(variant.normalizer);
    Fixture f(/*batch=*/3, SmallStats(), config, /*init_seed=*/6);
    const absl::StatusOr<StatsReport> report = f.runner.Compute(f.model, f.val);
    ASSERT_TRUE(report.ok()) << report.status();
    const ModelCapture capture = f.model.Capture();  // the same (only) batch of 3 samples
    const AttentionLayout layout{variant.prefix_tokens, variant.kv_bias ? 1 : 0};
    const int64_t heads = 2;
    for (int l = 0; l < 2; ++l) {
      const Tensor& probs = capture.layers[l].attention.probs;
      ASSERT_FALSE(probs.empty());  // the CPU backend keeps its probs
      const std::vector<double> alpha = KeyMass(probs, layout, SmallStats().window(), 0);
      for (size_t e = 0; e < report->eps.size(); ++e) {
        for (int64_t h = 0; h < heads; ++h) {
          double above = 0;
          for (int b = 0; b < 3; ++b) above += alpha[b * heads + h] > report->eps[e] ? 1 : 0;
          EXPECT_EQ(report->sink_ratio[e][l][h], above / 3) << "eps " << e << " head " << h;
        }
      }
      ExpectHeadsNear(report->first_token_mass[l],
                      MeanOverSamples(FirstTokenMass(probs, layout), heads), 1e-9,
                      "first-token mass");
      ExpectHeadsNear(report->entropy[l],
                      MeanOverSamples(AttentionEntropy(probs, layout), heads), 1e-5, "entropy");
      if (layout.prefix_tokens > 0) {
        ExpectHeadsNear(report->prefix_mass[l],
                        MeanOverSamples(PrefixMass(probs, layout), heads), 1e-6, "prefix");
      }
      if (layout.bias_keys > 0) {
        ExpectHeadsNear(report->bias_mass[l], MeanOverSamples(BiasKeyMass(probs, layout), heads),
                        1e-6, "bias");
      }
      if (variant.normalizer == AttentionConfig::SINK_LOGIT) {
        ExpectHeadsNear(report->virtual_mass[l],
                        MeanOverSamples(VirtualMass(probs, layout), heads), 1e-6, "virtual");
      }
    }
  }
}

TEST(StatsRunnerTest, StatisticsDoNotDependOnTheMicroBatch) {
  Fixture two(/*batch=*/2), three(/*batch=*/3);
  ASSERT_EQ(three.runner.model_batches(), 1);
  const absl::StatusOr<StatsReport> a = two.runner.Compute(two.model, two.val);
  const absl::StatusOr<StatsReport> b = three.runner.Compute(three.model, three.val);
  ASSERT_TRUE(a.ok() && b.ok());
  for (int l = 0; l < 2; ++l) {
    for (int h = 0; h < 2; ++h) {
      EXPECT_NEAR(a->first_token_mass[l][h], b->first_token_mass[l][h], 1e-6);
      EXPECT_NEAR(a->entropy[l][h], b->entropy[l][h], 1e-6);
      EXPECT_EQ(a->sink_ratio[0][l][h], b->sink_ratio[0][l][h]);
    }
    EXPECT_NEAR(a->kurtosis[l], b->kurtosis[l], 1e-5 * (1 + std::fabs(b->kurtosis[l])));
    EXPECT_NEAR(a->median_abs[l], b->median_abs[l], 1e-6);
    EXPECT_NEAR(a->token0_norm_ratio[l], b->token0_norm_ratio[l], 1e-6);
    EXPECT_EQ(a->top3[l][0].sample, b->top3[l][0].sample);
    EXPECT_EQ(a->top3[l][0].position, b->top3[l][0].position);
    EXPECT_EQ(a->top3[l][0].channel, b->top3[l][0].channel);
  }
  EXPECT_NEAR(a->max_linear_input_abs, b->max_linear_input_abs, 1e-6);
}

TEST(StatsRunnerTest, RefusesAWindowLongerThanTheSequenceNamingTheField) {
  StatsConfig stats = SmallStats();
  stats.set_window(kSeqLen + 1);
  Fixture f(/*batch=*/2, stats);
  const absl::StatusOr<StatsReport> report = f.runner.Compute(f.model, f.val);
  ASSERT_FALSE(report.ok());
  EXPECT_EQ(report.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(report.status().message(), "stats.window=9")) << report.status();
}

const JsonValue* Member(const JsonValue& object, const std::string& key) {
  for (const JsonMember& m : object.members) {
    if (m.key == key) return &m.value;
  }
  ADD_FAILURE() << "no key " << key;
  return nullptr;
}

// Checks that `value` is an array of `rows` arrays of `cols` numbers.
void ExpectMatrix(const JsonValue* value, size_t rows, size_t cols, const std::string& what) {
  ASSERT_NE(value, nullptr) << what;
  ASSERT_EQ(value->kind, JsonValue::Kind::kArray) << what;
  ASSERT_EQ(value->items.size(), rows) << what;
  for (const JsonValue& row : value->items) {
    ASSERT_EQ(row.items.size(), cols) << what;
    for (const JsonValue& x : row.items) EXPECT_EQ(x.kind, JsonValue::Kind::kNumber) << what;
  }
}

TEST(StatsRunnerTest, StatsJsonlLineParsesWithArraysOfTheRightSizes) {
  Fixture f(/*batch=*/2);
  const absl::StatusOr<StatsReport> report = f.runner.Compute(f.model, f.val);
  ASSERT_TRUE(report.ok()) << report.status();
  const std::string run_dir = absl::StrCat(::testing::TempDir(), "/stats_runner_test_", ::getpid());
  StatsWriter writer;
  ASSERT_TRUE(writer.Open(run_dir).ok());
  ASSERT_TRUE(writer.Append(10, *report).ok());
  ASSERT_TRUE(writer.Append(20, *report).ok());
  const absl::StatusOr<std::string> text = ReadFileToString(run_dir + "/stats/stats.jsonl");
  ASSERT_TRUE(text.ok()) << text.status();
  const size_t newline = text->find('\n');
  ASSERT_NE(newline, std::string::npos);
  EXPECT_EQ(text->size(), 2 * (newline + 1));  // two identical-length lines
  const absl::StatusOr<JsonValue> line = ParseJson(text->substr(0, newline));
  ASSERT_TRUE(line.ok()) << line.status();
  uint64_t step = 0;
  ASSERT_TRUE(Member(*line, "step")->AsUint64(&step));
  EXPECT_EQ(step, 10u);
  ExpectMatrix(Member(*line, "first_token_mass"), 2, 2, "first_token_mass");
  ExpectMatrix(Member(*line, "entropy"), 2, 2, "entropy");
  ExpectMatrix(Member(*line, "value_norm_ratio"), 2, 1, "value_norm_ratio");
  const JsonValue* sink_ratio = Member(*line, "sink_ratio");
  ASSERT_NE(sink_ratio, nullptr);
  ExpectMatrix(Member(*sink_ratio, "0.3"), 2, 2, "sink_ratio 0.3");
  ExpectMatrix(Member(*sink_ratio, "0.5"), 2, 2, "sink_ratio 0.5");
  const JsonValue* top3 = Member(*line, "top3");
  ASSERT_EQ(top3->items.size(), 2u);
  ASSERT_EQ(top3->items[0].items.size(), 3u);
  EXPECT_NE(Member(top3->items[0].items[0], "channel"), nullptr);
  for (const char* key : {"median_abs", "top1_ratio", "kurtosis", "token0_norm_ratio"}) {
    EXPECT_EQ(Member(*line, key)->items.size(), 2u) << key;
  }
  const JsonValue* linear = Member(*line, "linear_input_max");
  EXPECT_EQ(linear->members.size(), 2u * 7 + 1);  // 7 per block + lm_head
  EXPECT_NE(Member(*linear, "layers.1.ffn.w_down"), nullptr);
  EXPECT_NE(Member(*linear, "lm_head"), nullptr);
  for (const JsonMember& m : line->members) {
    EXPECT_NE(m.key, "prefix_mass");  // no prefix tokens, no kv bias, softmax, no gate
    EXPECT_NE(m.key, "bias_mass");
    EXPECT_NE(m.key, "virtual_mass");
    EXPECT_NE(m.key, "gate_mean");
  }
  JsonRecord record;
  record.Add("step", int64_t{10});
  const std::string metrics = AddStatsScalars(*report, record).ToJson();
  for (const char* key : {"\"sink_0.3\"", "\"sink_0.5\"", "\"first_token_mass\"",
                          "\"max_top1_ratio\"", "\"max_kurtosis\"", "\"max_linear_input_abs\"",
                          "\"mean_entropy\"", "\"token0_norm_ratio_max\""}) {
    EXPECT_TRUE(absl::StrContains(metrics, key)) << key << " in " << metrics;
  }
  EXPECT_TRUE(ParseJson(metrics).ok());
}

TEST(StatsRunnerTest, StatsOfSavedWeightsWriteOneLine) {
  const std::string dir = absl::StrCat(::testing::TempDir(), "/stats_weights_test_", ::getpid());
  const absl::StatusOr<Config> config = LoadEmbeddedTinyConfig(
      {"model { d_model: 16 n_layers: 2 n_heads: 2 ffn_hidden: 24 }",
       "data { seq_len: 16 } train { batch_size: 4 micro_batch_size: 2 }",
       "stats { window: 8 batch_size: 3 }"});
  ASSERT_TRUE(config.ok()) << config.status();
  CpuBackend backend;
  Arena arena(Device::kCpu, size_t{1} << 20);
  Model model(config->model(), 2, 16, &backend, &arena);
  model.InitParameters(3);
  ASSERT_TRUE(MakeDirs(dir).ok());
  ASSERT_TRUE(SaveModelWeights(model, *config, dir + "/model.safetensors").ok());
  const absl::Status status =
      RunStatsOnWeights(dir + "/model.safetensors", {}, dir + "/out/stats.jsonl");
  ASSERT_TRUE(status.ok()) << status;
  const absl::StatusOr<std::string> text = ReadFileToString(dir + "/out/stats.jsonl");
  ASSERT_TRUE(text.ok()) << text.status();
  ASSERT_EQ(text->back(), '\n');
  const absl::StatusOr<JsonValue> line = ParseJson(text->substr(0, text->size() - 1));
  ASSERT_TRUE(line.ok()) << line.status();
  EXPECT_EQ(Member(*line, "step")->kind, JsonValue::Kind::kNull);
  uint64_t samples = 0;
  ASSERT_TRUE(Member(*line, "samples")->AsUint64(&samples));
  EXPECT_EQ(samples, 3u);
  ExpectMatrix(Member(*line, "first_token_mass"), 2, 2, "first_token_mass");
}

}  // namespace
}  // namespace sinklab

// ConfigToText: the resolved config names every field explicitly and parses back to the
// same config, so a run directory's config.textproto reproduces the run.
#include "configs/config_writer.h"

#include <string>

#include "absl/strings/match.h"
#include "configs/config_loader.h"
#include "configs/config_util.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"

namespace sinklab {
namespace {

using google::protobuf::util::MessageDifferencer;

constexpr char kSmallConfig[] =
    "name: \"w\"\n"
    "seed: 99\n"
    "model { vocab_size: 264 d_model: 64 n_heads: 4 rope_theta: 500000 norm_eps: 1e-6 }\n"
    "optim { lr: 3e-3 schedule: WSD }\n"
    "data { seq_len: 64 doc_separator: \"\\n\\\"end\\\"\\n\" }\n";

TEST(ConfigWriterTest, TextRoundTripsToTheSameConfig) {
  Config config;
  ASSERT_TRUE(ParseConfigText(kSmallConfig, "mem", &config).ok());
  const std::string text = ConfigToText(config);
  Config reparsed;
  ASSERT_TRUE(ParseConfigText(text, "written", &reparsed).ok()) << text;
  // parse(write(c)) is c with presence made explicit: equal field by field ...
  const Config resolved = ResolveConfigDefaults(config);
  EXPECT_TRUE(MessageDifferencer::Equals(reparsed, resolved)) << text;
  // ... with the same effective values as c wherever c had a field ...
  EXPECT_TRUE(MessageDifferencer::Equivalent(reparsed.model(), config.model()));
  EXPECT_TRUE(MessageDifferencer::Equivalent(reparsed.optim(), config.optim()));
  EXPECT_EQ(reparsed.data().doc_separator(), "\n\"end\"\n");
  // ... and writing it again changes nothing (a fixed point).
  EXPECT_EQ(ConfigToText(reparsed), text);
}

TEST(ConfigWriterTest, DefaultValuedFieldsAreWrittenExplicitly) {
  Config config;
  ASSERT_TRUE(ParseConfigText(kSmallConfig, "mem", &config).ok());
  ASSERT_FALSE(config.has_checkpoint());
  ASSERT_FALSE(config.model().has_n_layers());
  const std::string text = ConfigToText(config);
  EXPECT_TRUE(absl::StrContains(text, "n_layers: 12\n")) << text;
  EXPECT_TRUE(absl::StrContains(text, "tie_embeddings: false\n")) << text;
  EXPECT_TRUE(absl::StrContains(text, "normalizer: SOFTMAX\n")) << text;
  EXPECT_TRUE(absl::StrContains(text, "text_corpus: \"data/corpus/kjv.txt\"\n")) << text;
  EXPECT_TRUE(absl::StrContains(text, "train_shards: \"\"\n")) << text;
  EXPECT_TRUE(absl::StrContains(text, "checkpoint {\n  every: 1000\n  keep: 3\n}")) << text;
  EXPECT_TRUE(absl::StrContains(text, "eps: 0.3\n")) << text;  // empty stats.eps -> {0.3}
  EXPECT_TRUE(absl::StrContains(text, "rope_theta: 500000\n")) << text;
}

TEST(ConfigWriterTest, ResolvedConfigHasEveryFieldPresentAndSameValues) {
  const Config empty;
  const Config resolved = ResolveConfigDefaults(empty);
  EXPECT_TRUE(resolved.has_name() && resolved.has_seed());
  EXPECT_TRUE(resolved.model().has_attention() && resolved.model().attention().has_normalizer());
  EXPECT_TRUE(resolved.logging().has_tensorboard());
  EXPECT_TRUE(resolved.optim().has_decay_biases());
  ASSERT_EQ(resolved.stats().eps_size(), 1);
  EXPECT_FLOAT_EQ(resolved.stats().eps(0), kDefaultSinkEps);
  EXPECT_EQ(resolved.model().d_model(), empty.model().d_model());
  EXPECT_FLOAT_EQ(resolved.optim().beta2(), empty.optim().beta2());
}

TEST(ConfigWriterTest, ExplicitValuesAndEpsListAreKept) {
  Config config;
  config.mutable_model()->set_d_model(256);
  config.mutable_stats()->add_eps(0.1f);
  config.mutable_stats()->add_eps(0.5f);
  const Config resolved = ResolveConfigDefaults(config);
  EXPECT_EQ(resolved.model().d_model(), 256);
  ASSERT_EQ(resolved.stats().eps_size(), 2);
  EXPECT_FLOAT_EQ(resolved.stats().eps(1), 0.5f);
}

TEST(ConfigWriterTest, FloatsSurviveTheTextExactly) {
  Config config;
  config.mutable_optim()->set_lr(0.1f + 0.2f);  // not a short decimal
  config.mutable_model()->set_init_std(1.0f / 3.0f);
  Config reparsed;
  ASSERT_TRUE(ParseConfigText(ConfigToText(config), "written", &reparsed).ok());
  EXPECT_EQ(reparsed.optim().lr(), config.optim().lr());
  EXPECT_EQ(reparsed.model().init_std(), config.model().init_std());
}

TEST(ConfigWriterTest, WrittenPresetReloadsAndValidates) {
  const absl::StatusOr<Config> tiny = LoadEmbeddedTinyConfig({});
  ASSERT_TRUE(tiny.ok()) << tiny.status();
  const absl::StatusOr<Config> again = LoadConfigFromText(ConfigToText(*tiny), "written", {});
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(MessageDifferencer::Equals(*again, ResolveConfigDefaults(*tiny)));
}

TEST(ConfigWriterTest, UnsetNumbersWithoutDefaultStayUnsetSoTheirFallbackSurvives) {
  // optim.muon.lr unset means "0.02 or optim.lr" (optim/param_groups.h): writing 0 would
  // make the reloaded run train Muon with lr 0.
  Config config;
  config.mutable_optim()->set_matrix_optimizer(MUON);
  const std::string text = ConfigToText(config);
  Config reparsed;
  ASSERT_TRUE(ParseConfigText(text, "written", &reparsed).ok()) << text;
  EXPECT_FALSE(reparsed.optim().muon().has_lr()) << text;
  EXPECT_FALSE(reparsed.optim().muon().has_weight_decay()) << text;
  EXPECT_TRUE(reparsed.optim().muon().has_momentum()) << text;
  EXPECT_FALSE(reparsed.model().attention().has_sigmoid_bias()) << text;
}

}  // namespace
}  // namespace sinklab

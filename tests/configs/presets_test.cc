// The presets in configs/ (read from the repository root, the tests' working directory) and
// the embedded default load, validate and have the shapes their comments promise.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"
#include "configs/config_loader.h"
#include "configs/config_util.h"
#include "configs/embedded_config.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"

namespace sinklab {
namespace {

// `relative` under $SINKLAB_ROOT when set, else under the working directory.
std::string RepoPath(const std::string& relative) {
  const char* root = std::getenv("SINKLAB_ROOT");
  return root == nullptr ? relative : absl::StrCat(root, "/", relative);
}

// Parameters of the Llama of `model`: embeddings (+ untied head), per block attention
// q,k,v,o + SwiGLU gate,up,down + 2 RMSNorm gains, final RMSNorm.
int64_t ParameterCount(const ModelConfig& model) {
  const int64_t d = model.d_model(), v = model.vocab_size(), f = model.ffn_hidden();
  const int64_t kv = static_cast<int64_t>(KvHeads(model)) * HeadDim(model);
  const int64_t block = 2 * d * d + 2 * d * kv + 3 * d * f + 2 * d;
  return v * d * (model.tie_embeddings() ? 1 : 2) + model.n_layers() * block + d;
}

TEST(PresetsTest, TinyLoadsValidatesAndIsAboutOneMillionParameters) {
  const absl::StatusOr<Config> tiny = LoadConfig(RepoPath("configs/tiny.textproto"), {});
  ASSERT_TRUE(tiny.ok()) << tiny.status();
  EXPECT_EQ(tiny->name(), "tiny");
  EXPECT_EQ(tiny->model().vocab_size(), 264);
  EXPECT_EQ(tiny->model().vocab_size() % 8, 0);
  EXPECT_EQ(HeadDim(tiny->model()), 32);
  EXPECT_EQ(ParameterCount(tiny->model()), 920704);  // the number in the file's comment
  EXPECT_EQ(tiny->data().text_corpus(), "data/corpus/kjv.txt");
  EXPECT_TRUE(tiny->data().train_shards().empty());
  EXPECT_EQ(tiny->data().seq_len(), 128);
  EXPECT_EQ(tiny->train().steps(), 300);
  EXPECT_EQ(MicroBatchSize(tiny->train()), 16);
  EXPECT_EQ(tiny->optim().schedule(), OptimConfig::COSINE);
  EXPECT_EQ(tiny->checkpoint().every(), 0);
}

TEST(PresetsTest, Llama160mLoadsValidatesAndIsAbout160MParameters) {
  const absl::StatusOr<Config> llama =
      LoadConfig(RepoPath("configs/llama_160m.textproto"), {});
  ASSERT_TRUE(llama.ok()) << llama.status();
  EXPECT_EQ(HeadDim(llama->model()), 64);
  EXPECT_FALSE(llama->model().tie_embeddings());
  EXPECT_EQ(ParameterCount(llama->model()), 162220800);  // the number in the file's comment
  EXPECT_EQ(llama->data().train_shards(), "data/shards/fineweb_train_*.bin");
  EXPECT_EQ(llama->data().val_shards(), "data/shards/fineweb_val_*.bin");
  EXPECT_EQ(llama->data().seq_len(), 1024);
}

TEST(PresetsTest, Llama160mTakesAMitigationAsOneSetLine) {
  const absl::StatusOr<Config> gqa = LoadConfig(RepoPath("configs/llama_160m.textproto"),
                                                {"model { n_kv_heads: 4 }"});
  ASSERT_TRUE(gqa.ok()) << gqa.status();
  EXPECT_EQ(KvHeads(gqa->model()), 4);
  EXPECT_EQ(gqa->model().d_model(), 768);
}

TEST(PresetsTest, EmbeddedTinyIsTheTinyFile) {
  const absl::StatusOr<Config> embedded = LoadEmbeddedTinyConfig({});
  ASSERT_TRUE(embedded.ok()) << embedded.status();
  const absl::StatusOr<Config> file = LoadConfig(RepoPath("configs/tiny.textproto"), {});
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(*embedded, *file))
      << "rebuild: the embedded text is older than configs/tiny.textproto";
}

TEST(PresetsTest, EmbeddedTinyTakesSetFragments) {
  const absl::StatusOr<Config> config = LoadEmbeddedTinyConfig({"train { steps: 5 }"});
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->train().steps(), 5);
  EXPECT_EQ(config->model().d_model(), 128);
  // d_model (embedded) and n_heads (--set[1]) clash: the fragment, the latest edit, is blamed.
  const absl::StatusOr<Config> bad = LoadEmbeddedTinyConfig({"model { n_heads: 3 }"});
  EXPECT_EQ(bad.status().message(),
            "--set[1]:1:9: model.d_model=128 is not divisible by model.n_heads=3");
}

TEST(PresetsTest, EmbeddedTinyLocationsNameTheEmbeddedText) {
  Config config;
  ConfigSource source;
  ASSERT_TRUE(
      ParseConfigText(EmbeddedTinyConfigText(), kEmbeddedTinyConfigName, &config, &source).ok());
  // The line of "  d_model: 128" in the text, counted here independently.
  const std::string text = EmbeddedTinyConfigText();
  const size_t at = text.find("\n  d_model: 128");
  ASSERT_NE(at, std::string::npos);
  const int line = 2 + static_cast<int>(std::count(text.begin(), text.begin() + at, '\n'));
  EXPECT_EQ(source.LocationOf("model.d_model"),
            absl::StrCat(kEmbeddedTinyConfigName, ":", line, ":3"));
}

TEST(PresetsTest, TinyMuonIsTinyWithMuonForTheHiddenMatrices) {
  const absl::StatusOr<Config> muon = LoadConfig(RepoPath("configs/muon.textproto"), {});
  ASSERT_TRUE(muon.ok()) << muon.status();
  const absl::StatusOr<Config> tiny = LoadConfig(RepoPath("configs/tiny.textproto"), {});
  ASSERT_TRUE(tiny.ok()) << tiny.status();
  EXPECT_EQ(muon->name(), "muon");  // a preset is named after its file
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(muon->model(), tiny->model()));
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(muon->data(), tiny->data()));
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(muon->train(), tiny->train()));
  EXPECT_EQ(muon->optim().matrix_optimizer(), MUON);
  EXPECT_EQ(muon->optim().muon().scaling(), MuonConfig::ORIGINAL);
  EXPECT_FLOAT_EQ(muon->optim().muon().lr(), 0.02f);
  EXPECT_FLOAT_EQ(muon->optim().lr(), tiny->optim().lr());
}

}  // namespace
}  // namespace sinklab

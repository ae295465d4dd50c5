// Every preset in configs/ loads and validates with `name` equal to its file stem; each
// mitigation preset is the tiny model plus its one switch, and builds a Model with the
// parameter count its comment states.
#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>

#include "absl/strings/str_cat.h"
#include "configs/config_loader.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "layers/cpu/cpu_backend.h"
#include "layers/model.h"

namespace sinklab {
namespace {

std::string RepoPath(const std::string& relative) {
  const char* root = std::getenv("SINKLAB_ROOT");
  return root == nullptr ? relative : absl::StrCat(root, "/", relative);
}

TEST(MitigationPresetsTest, EveryTextprotoInConfigsLoadsWithItsStemAsName) {
  int count = 0;
  for (const auto& entry : std::filesystem::directory_iterator(RepoPath("configs"))) {
    if (entry.path().extension() != ".textproto") continue;
    SCOPED_TRACE(entry.path().string());
    const absl::StatusOr<Config> config = LoadConfig(entry.path().string(), {});
    ASSERT_TRUE(config.ok()) << config.status();
    EXPECT_EQ(config->name(), entry.path().stem().string());
    ++count;
  }
  EXPECT_GE(count, 12);  // tiny, llama_160m and the ten mitigation presets
}

// The switch of each preset, as the model sub-message differs from tiny's, and the
// parameter count of its comment.
TEST(MitigationPresetsTest, EachMitigationPresetIsTinyPlusOneSwitch) {
  const absl::StatusOr<Config> tiny = LoadConfig(RepoPath("configs/tiny.textproto"), {});
  ASSERT_TRUE(tiny.ok()) << tiny.status();
  const std::map<std::string, std::pair<std::string, int64_t>> presets = {
      {"softmax1", {"attention { normalizer: SOFTMAX1 }", 920704}},
      {"sink_logit", {"attention { normalizer: SINK_LOGIT }", 920720}},
      {"kv_bias", {"attention { kv_bias: true }", 921728}},
      {"softpick", {"attention { normalizer: SOFTPICK }", 920704}},
      {"sigmoid", {"attention { normalizer: SIGMOID }", 920704}},
      {"clipped_softmax", {"attention { normalizer: CLIPPED_SOFTMAX }", 920704}},
      {"gate_g1",
       {"attention { gate { position: SDPA_OUTPUT granularity: ELEMENTWISE } }", 986240}},
      {"gate_g2_headwise",
       {"attention { gate { position: VALUE granularity: HEADWISE } }", 922752}},
      {"prefix_tokens", {"prefix_tokens: 4", 921216}},
      {"qk_norm", {"attention { qk_norm: true }", 920960}},
  };
  for (const auto& [stem, expected] : presets) {
    SCOPED_TRACE(stem);
    const absl::StatusOr<Config> preset =
        LoadConfig(RepoPath(absl::StrCat("configs/", stem, ".textproto")), {});
    ASSERT_TRUE(preset.ok()) << preset.status();
    // tiny + the switch (and the name) is the preset.
    const absl::StatusOr<Config> rebuilt = LoadConfig(
        RepoPath("configs/tiny.textproto"),
        {absl::StrCat("name: \"", stem, "\" model { ", expected.first, " }")});
    ASSERT_TRUE(rebuilt.ok()) << rebuilt.status();
    EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(*preset, *rebuilt))
        << preset->DebugString() << "\nvs\n" << rebuilt->DebugString();
    CpuBackend backend;
    Arena arena;
    Model model(preset->model(), 1, 8, &backend, &arena);
    EXPECT_EQ(model.NumParameters(), expected.second);
  }
}

}  // namespace
}  // namespace sinklab

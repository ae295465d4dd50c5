// ConfigSource::LocationOf: the text that set a field last (merge order) gives its
// 1-based line:column; repeated fields count occurrences across texts.
#include "configs/config_source.h"

#include <string>

#include "configs/config_loader.h"
#include "gtest/gtest.h"

namespace sinklab {
namespace {

// Parses `text` into a throwaway Config, recording its locations in `source`.
void AddText(const std::string& text, const std::string& name, ConfigSource* source) {
  Config config;
  ASSERT_TRUE(ParseConfigText(text, name, &config, source).ok()) << text;
}

TEST(ConfigSourceTest, NamesOneBasedLineAndColumn) {
  ConfigSource source;
  AddText("name: \"a\"\nmodel {\n    n_heads: 4\n}\n", "f", &source);
  EXPECT_EQ(source.LocationOf("name"), "f:1:1");
  EXPECT_EQ(source.LocationOf("model"), "f:2:1");
  EXPECT_EQ(source.LocationOf("model.n_heads"), "f:3:5");
}

TEST(ConfigSourceTest, UnsetFieldHasNoLocation) {
  ConfigSource source;
  AddText("model { n_heads: 4 }", "f", &source);
  int text = 7;
  EXPECT_EQ(source.LocationOf("model.d_model", &text), "");
  EXPECT_EQ(text, -1);
  EXPECT_EQ(source.LocationOf("optim.lr"), "");
}

TEST(ConfigSourceTest, LaterTextWinsForSingularFields) {
  ConfigSource source;
  AddText("model {\n  n_heads: 4\n  d_model: 64\n}\n", "f", &source);
  AddText("model { n_heads: 8 }", "--set[1]", &source);
  AddText("seed: 3", "--set[2]", &source);
  int text = -1;
  EXPECT_EQ(source.LocationOf("model.n_heads", &text), "--set[1]:1:9");
  EXPECT_EQ(text, 1);
  EXPECT_EQ(source.LocationOf("model.d_model", &text), "f:3:3");
  EXPECT_EQ(text, 0);
  EXPECT_EQ(source.LocationOf("seed"), "--set[2]:1:1");
}

TEST(ConfigSourceTest, RepeatedElementsCountAcrossTextsInMergeOrder) {
  ConfigSource source;
  AddText("stats {\n  eps: 0.1\n  eps: 0.2\n}\n", "f", &source);
  AddText("stats { eps: [0.3, 0.4] }", "--set[1]", &source);
  EXPECT_EQ(source.LocationOf("stats.eps[0]"), "f:2:3");
  EXPECT_EQ(source.LocationOf("stats.eps[1]"), "f:3:3");
  EXPECT_EQ(source.LocationOf("stats.eps[2]"), "--set[1]:1:9");
  // A list is one occurrence: its later elements map to it.
  EXPECT_EQ(source.LocationOf("stats.eps[3]"), "--set[1]:1:9");
}

TEST(ConfigSourceDeathTest, PathNamingNoFieldIsAProgrammerError) {
  ConfigSource source;
  EXPECT_DEATH(source.LocationOf("model.n_head"), "names no field");
  EXPECT_DEATH(source.LocationOf("stats.eps"), "repeated");
}

}  // namespace
}  // namespace sinklab

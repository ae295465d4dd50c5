// ParseConfigText / LoadConfig: parse errors carry <text>:<line>:<column> (1-based) of the
// planted mistake, unknown fields are refused, and --set fragments merge over the file.
#include "configs/config_loader.h"

#include <cstdio>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/configs/status_text.h"

namespace sinklab {
namespace {


// Writes `text` to a fresh file under the test temp dir and returns its path.
std::string WriteTempConfig(const std::string& name, const std::string& text) {
  const std::string path = absl::StrCat(::testing::TempDir(), "/", name);
  std::FILE* file = std::fopen(path.c_str(), "wb");
  EXPECT_NE(file, nullptr) << path;
  std::fwrite(text.data(), 1, text.size(), file);
  std::fclose(file);
  return path;
}

// A small valid config: byte-level text corpus, defaults elsewhere.
constexpr char kValidConfig[] =
    "name: \"t\"\n"
    "model {\n"
    "  vocab_size: 264\n"
    "  d_model: 64\n"
    "  n_heads: 4\n"
    "}\n"
    "data { seq_len: 64 }\n";

TEST(ParseConfigTextTest, ParsesFieldsAndKeepsDefaultsOfUnsetOnes) {
  Config config;
  ASSERT_TRUE(ParseConfigText(kValidConfig, "mem", &config).ok());
  EXPECT_EQ(config.name(), "t");
  EXPECT_EQ(config.model().vocab_size(), 264);
  EXPECT_EQ(config.model().d_model(), 64);
  EXPECT_EQ(config.model().n_layers(), 12);  // schema default
  EXPECT_FALSE(config.model().has_n_layers());
  EXPECT_EQ(config.data().seq_len(), 64);
}

TEST(ParseConfigTextTest, UnknownFieldNamesFileLineAndColumn) {
  Config config;
  const absl::Status status = ParseConfigText(
      "name: \"t\"\nmodel {\n  d_model: 64\n  n_head: 4\n}\n", "x.textproto", &config);
  ASSERT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  // `n_head` starts on line 4, column 3 (protobuf itself reports the ':' after it).
  EXPECT_TRUE(MessageStartsWith(status, "x.textproto:4:3: "));
  EXPECT_TRUE(MessageContains(status, "no field named \"n_head\""));
}

TEST(ParseConfigTextTest, UnknownTopLevelFieldIsRefusedNotSkipped) {
  Config config;
  const absl::Status status = ParseConfigText("nme: \"t\"\n", "x.textproto", &config);
  ASSERT_FALSE(status.ok());
  EXPECT_TRUE(MessageContains(status, "x.textproto:1:"));
  EXPECT_TRUE(MessageContains(status, "\"nme\""));
}

TEST(ParseConfigTextTest, StringForIntNamesTheValue) {
  Config config;
  const absl::Status status =
      ParseConfigText("train {\n  steps: \"ten\"\n}\n", "x.textproto", &config);
  ASSERT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  // The value "ten" starts at line 2, column 10.
  EXPECT_TRUE(MessageStartsWith(status, "x.textproto:2:10: "));
  EXPECT_TRUE(MessageContains(status, "Expected integer"));
}

TEST(ParseConfigTextTest, BadEnumNamesTheValue) {
  Config config;
  const absl::Status status =
      ParseConfigText("optim { schedule: LINEAR }\n", "x.textproto", &config);
  ASSERT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  // LINEAR starts at line 1, column 19.
  EXPECT_TRUE(MessageStartsWith(status, "x.textproto:1:19: "));
  EXPECT_TRUE(MessageContains(status, "LINEAR"));
}

TEST(ParseConfigTextTest, BadEnumAtEndOfLineIsReportedOnItsOwnLine) {
  Config config;
  const absl::Status status = ParseConfigText(
      "optim {\n  schedule: LINEAR  # typo\n\n}\n", "x.textproto", &config);
  // Protobuf reports the next token, the '}' on line 4; the name is at line 2, column 13.
  EXPECT_TRUE(MessageStartsWith(status, "x.textproto:2:13: "));
}

TEST(ParseConfigTextTest, WrongTypeReportedAtTheValueItself) {
  Config config;
  // "Expected integer, got: "7x"": the value's own position, not moved to the ':' before.
  const absl::Status status =
      ParseConfigText("model {\n  n_heads: \"7x\"\n}\n", "x.textproto", &config);
  EXPECT_TRUE(MessageStartsWith(status, "x.textproto:2:12: "));
}

TEST(ParseConfigTextTest, SyntaxErrorNamesLineAndColumn) {
  Config config;
  const absl::Status status =
      ParseConfigText("model {\n  d_model: 64\n  n_heads: 4 4\n", "x.textproto", &config);
  ASSERT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  // The stray second `4` is at line 3, column 14.
  EXPECT_TRUE(MessageStartsWith(status, "x.textproto:3:14: "));
}

TEST(ParseConfigTextTest, MissingClosingBraceSaysEndOfInput) {
  Config config;
  const absl::Status status =
      ParseConfigText("model {\n  d_model: 64\n", "x.textproto", &config);
  EXPECT_TRUE(MessageStartsWith(status, "x.textproto:3:1: "));
  EXPECT_TRUE(MessageContains(status, "got: end of input"));
}

TEST(ParseConfigTextTest, ColumnsAreOneBasedAfterLeadingSpaces) {
  Config config;
  const absl::Status status = ParseConfigText("    seed: -1\n", "x.textproto", &config);
  ASSERT_FALSE(status.ok());
  // uint64 refuses the '-' at line 1, column 11 (0-based 10).
  EXPECT_TRUE(MessageStartsWith(status, "x.textproto:1:11: "));
}

TEST(ParseConfigTextTest, SingularFieldTwiceIsRefused) {
  Config config;
  const absl::Status status =
      ParseConfigText("seed: 1\nseed: 2\n", "x.textproto", &config);
  ASSERT_FALSE(status.ok());
  EXPECT_TRUE(MessageStartsWith(status, "x.textproto:2:1: "));
}

TEST(LoadConfigTest, LoadsAndValidatesAFile) {
  const std::string path = WriteTempConfig("valid.textproto", kValidConfig);
  const absl::StatusOr<Config> config = LoadConfig(path, {});
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->model().d_model(), 64);
}

TEST(LoadConfigTest, MissingFileIsNotFoundNamingThePath) {
  const absl::StatusOr<Config> config = LoadConfig("configs/no_such_config.textproto", {});
  ASSERT_EQ(config.status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(MessageContains(config.status(), "configs/no_such_config.textproto"));
}

TEST(LoadConfigTest, DirectoryIsRefusedNotReadAsEmptyConfig) {
  const absl::StatusOr<Config> config = LoadConfig(::testing::TempDir(), {});
  ASSERT_FALSE(config.ok());
  EXPECT_TRUE(MessageContains(config.status(), ::testing::TempDir()));
}

TEST(LoadConfigTest, ParseErrorNamesThePathGiven) {
  const std::string path = WriteTempConfig("typo.textproto", "name: \"t\"\nmodle { }\n");
  const absl::StatusOr<Config> config = LoadConfig(path, {});
  ASSERT_FALSE(config.ok());
  EXPECT_TRUE(MessageStartsWith(config.status(), absl::StrCat(path, ":2:")));
}

TEST(LoadConfigTest, SetReplacesScalarAndMergesSubMessage) {
  const std::string path = WriteTempConfig("merge.textproto", kValidConfig);
  const absl::StatusOr<Config> config =
      LoadConfig(path, {"name: \"u\"", "model { n_heads: 8 }", "optim { lr: 1e-3 }"});
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->name(), "u");                  // scalar replaced
  EXPECT_EQ(config->model().n_heads(), 8);         // sub-message field replaced ...
  EXPECT_EQ(config->model().d_model(), 64);        // ... its siblings kept
  EXPECT_EQ(config->model().vocab_size(), 264);
  EXPECT_FLOAT_EQ(config->optim().lr(), 1e-3f);    // new sub-message added
  EXPECT_EQ(config->data().seq_len(), 64);         // untouched sub-message kept
}

TEST(LoadConfigTest, LaterSetWinsAndRepeatedFieldsAppend) {
  const std::string path = WriteTempConfig("order.textproto", kValidConfig);
  const absl::StatusOr<Config> config = LoadConfig(
      path, {"seed: 7", "seed: 9 stats { eps: 0.1 }", "stats { eps: 0.5 }"});
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->seed(), 9u);
  ASSERT_EQ(config->stats().eps_size(), 2);
  EXPECT_FLOAT_EQ(config->stats().eps(0), 0.1f);
  EXPECT_FLOAT_EQ(config->stats().eps(1), 0.5f);
}

TEST(LoadConfigTest, SetFragmentErrorIsNamedByItsIndex) {
  const std::string path = WriteTempConfig("frag.textproto", kValidConfig);
  const absl::StatusOr<Config> config =
      LoadConfig(path, {"seed: 3", "model { n_heads: eight }"});
  ASSERT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  // "eight" is at column 18 of the second fragment.
  EXPECT_TRUE(MessageStartsWith(config.status(), "--set[2]:1:18: "));
}

TEST(LoadConfigTest, FirstSetFragmentUnknownFieldIsNamedSet1) {
  const absl::StatusOr<Config> config =
      LoadConfigFromText(kValidConfig, "mem", {"model { n_haeds: 8 }"});
  ASSERT_FALSE(config.ok());
  EXPECT_TRUE(MessageStartsWith(config.status(), "--set[1]:1:"));
  EXPECT_TRUE(MessageContains(config.status(), "n_haeds"));
}

}  // namespace
}  // namespace sinklab

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "launch/cli_args.h"
#include "launch/progress.h"
#include "launch/run_dir.h"

namespace sinklab {
namespace {

TEST(CliArgsTest, ExtractsRepeatedSetFragmentsKeepingCommas) {
  std::vector<std::string> storage = {"sinklab", "train", "c.textproto", "--set",
                                      "model { d_model: 64, n_heads: 2 }", "--device=cpu",
                                      "--set=train { steps: 3 }"};
  std::vector<char*> argv;
  for (std::string& s : storage) argv.push_back(s.data());
  const absl::StatusOr<SplitArgs> split = ExtractSetOverrides(static_cast<int>(argv.size()), argv.data());
  ASSERT_TRUE(split.ok()) << split.status();
  EXPECT_EQ(split->overrides,
            (std::vector<std::string>{"model { d_model: 64, n_heads: 2 }", "train { steps: 3 }"}));
  EXPECT_EQ(split->rest, (std::vector<std::string>{"sinklab", "train", "c.textproto", "--device=cpu"}));
}

TEST(CliArgsTest, SetWithoutValueIsAnError) {
  std::vector<std::string> storage = {"sinklab", "train", "--set"};
  std::vector<char*> argv;
  for (std::string& s : storage) argv.push_back(s.data());
  const absl::StatusOr<SplitArgs> split = ExtractSetOverrides(3, argv.data());
  ASSERT_FALSE(split.ok());
  EXPECT_NE(split.status().message().find("--set"), std::string::npos);
}

TEST(ProgressTest, FormatsStepLossRateAndEta) {
  const std::string line = FormatProgress({9, 300, 3.21454f, 1e-3f, 0.5f, 12345.0, 83.0});
  EXPECT_EQ(line, "step  10/300 | loss 3.2145 | lr 1.00e-03 | gnorm 0.50 | 12.3k tok/s | ETA 1m23s");
  EXPECT_EQ(FormatDuration(5), "5s");
  EXPECT_EQ(FormatDuration(3725), "1h02m");
}

TEST(RunDirTest, NeverReusesAnExistingRunDirectory) {
  const std::string root = ::testing::TempDir() + "/run_dir_test_" + std::to_string(::getpid());
  const absl::StatusOr<std::string> first = CreateRunDir(root, "tiny");
  const absl::StatusOr<std::string> second = CreateRunDir(root, "tiny");
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ(*first, root + "/tiny");
  EXPECT_EQ(*second, root + "/tiny_1");
  EXPECT_FALSE(CreateRunDir(root, "a/b").ok());
}

}  // namespace
}  // namespace sinklab

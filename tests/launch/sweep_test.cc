// Sweep files (launch/sweep.h): the cross product of the axes, the merge order of the
// overrides, run names and directories, and errors that name the sweep file and the field.
#include "launch/sweep.h"

#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "gtest/gtest.h"

namespace sinklab {
namespace {

constexpr char kPath[] = "sweeps/ablation.textproto";

std::vector<SweepRun> ExpandOrDie(const std::string& text,
                                  const std::vector<std::string>& overrides = {}) {
  absl::StatusOr<SweepFile> file = ParseSweepText(text, kPath);
  EXPECT_TRUE(file.ok()) << file.status();
  if (!file.ok()) return {};
  absl::StatusOr<std::vector<SweepRun>> runs = ExpandSweep(*file, overrides);
  EXPECT_TRUE(runs.ok()) << runs.status();
  return runs.ok() ? *runs : std::vector<SweepRun>{};
}

// The error of parsing and expanding `text`.
std::string ErrorOf(const std::string& text) {
  absl::StatusOr<SweepFile> file = ParseSweepText(text, kPath);
  if (!file.ok()) return std::string(file.status().message());
  absl::StatusOr<std::vector<SweepRun>> runs = ExpandSweep(*file, {});
  EXPECT_FALSE(runs.ok());
  return runs.ok() ? "" : std::string(runs.status().message());
}

constexpr char kTwoByThree[] = R"(base_config: "configs/tiny.textproto"
overrides { train { steps: 7 run_root: "out" } optim { lr: 1e-3 } }
axis {
  name: "attention"
  value { label: "softmax" }
  value { label: "softmax1" overrides { model { attention { normalizer: SOFTMAX1 } } } }
}
axis {
  name: "lr"
  value { label: "base" }
  value { label: "2e-3" overrides { optim { lr: 2e-3 } } }
  value { label: "wd0" overrides { optim { weight_decay: 0 } } }
}
)";

TEST(SweepTest, ExpandsTheCrossProductWithTheFirstAxisSlowest) {
  const std::vector<SweepRun> runs = ExpandOrDie(kTwoByThree);
  std::vector<std::string> labels;
  for (const SweepRun& run : runs) labels.push_back(run.label);
  EXPECT_EQ(labels, (std::vector<std::string>{"softmax_base", "softmax_2e-3", "softmax_wd0",
                                              "softmax1_base", "softmax1_2e-3", "softmax1_wd0"}));
  ASSERT_EQ(runs.size(), 6u);
  EXPECT_EQ(runs[4].what, "attention=softmax1 lr=2e-3");
  // The folder is the file's stem; the run directory is under the run's train.run_root.
  EXPECT_EQ(runs[4].run_dir, "out/ablation/softmax1_2e-3");
  EXPECT_EQ(runs[4].config.name(), "ablation_softmax1_2e-3");
}

TEST(SweepTest, OverridesMergeBaseThenSweepThenAxesThenCommandLine) {
  const std::vector<SweepRun> runs = ExpandOrDie(kTwoByThree, {"optim { warmup_steps: 3 }"});
  ASSERT_EQ(runs.size(), 6u);
  for (const SweepRun& run : runs) {
    EXPECT_EQ(run.config.model().d_model(), 128);  // the base config (configs/tiny.textproto)
    EXPECT_EQ(run.config.train().steps(), 7);      // the sweep's overrides
    EXPECT_EQ(run.config.optim().warmup_steps(), 3);  // the command line
  }
  EXPECT_FLOAT_EQ(runs[0].config.optim().lr(), 1e-3f);  // the sweep's overrides over tiny's 3e-3
  EXPECT_FLOAT_EQ(runs[1].config.optim().lr(), 2e-3f);  // the axis value over the sweep's
  EXPECT_FLOAT_EQ(runs[2].config.optim().weight_decay(), 0.0f);
  EXPECT_FLOAT_EQ(runs[2].config.optim().lr(), 1e-3f);
  EXPECT_EQ(runs[0].config.model().attention().normalizer(), AttentionConfig::SOFTMAX);
  EXPECT_EQ(runs[3].config.model().attention().normalizer(), AttentionConfig::SOFTMAX1);
  // The command line comes last, so it wins over an axis value.
  const std::vector<SweepRun> forced = ExpandOrDie(kTwoByThree, {"optim { lr: 5e-3 }"});
  ASSERT_EQ(forced.size(), 6u);
  EXPECT_FLOAT_EQ(forced[1].config.optim().lr(), 5e-3f);
}

TEST(SweepTest, NameReplacesTheFileStem) {
  const std::vector<SweepRun> runs = ExpandOrDie(R"(base_config: "configs/tiny.textproto"
name: "gates"
overrides { train { run_root: "r" } }
axis {
  name: "seed"
  value { label: "s1" overrides { seed: 1 } }
  value { label: "s2" overrides { seed: 2 } }
}
)");
  ASSERT_EQ(runs.size(), 2u);
  EXPECT_EQ(runs[1].run_dir, "r/gates/s2");
  EXPECT_EQ(runs[1].config.seed(), 2u);
}

TEST(SweepTest, TheExampleSweepExpandsToSixValidRuns) {
  absl::StatusOr<SweepFile> file = LoadSweep("experiments/sweeps/tiny_mitigations.textproto");
  ASSERT_TRUE(file.ok()) << file.status();
  absl::StatusOr<std::vector<SweepRun>> runs = ExpandSweep(*file, {});
  ASSERT_TRUE(runs.ok()) << runs.status();
  ASSERT_EQ(runs->size(), 6u);
  EXPECT_EQ(runs->back().run_dir, "runs/tiny_mitigations/gated_muon");
  EXPECT_EQ(runs->back().config.optim().matrix_optimizer(), MUON);
}

TEST(SweepTest, UnknownFieldInAnOverrideIsASyntaxErrorWithLineAndColumn) {
  const std::string error = ErrorOf(R"(base_config: "configs/tiny.textproto"
axis {
  name: "a"
  value { label: "x" overrides { model { n_head: 4 } } }
}
)");
  EXPECT_TRUE(absl::StartsWith(error, "sweeps/ablation.textproto:4:")) << error;
  EXPECT_TRUE(absl::StrContains(error, "n_head")) << error;
}

TEST(SweepTest, RepeatedLabelIsNamedWhereItIsWritten) {
  const std::string error = ErrorOf(R"(base_config: "configs/tiny.textproto"
axis {
  name: "attention"
  value { label: "softmax" }
  value {
    label: "softmax"
  }
}
)");
  EXPECT_TRUE(absl::StartsWith(error,
                               "sweeps/ablation.textproto:6:5: axis[0] 'attention' value[1]: "
                               "label 'softmax' repeats value[0]"))
      << error;
}

TEST(SweepTest, LabelsMustBeFolderNamePiecesWithoutUnderscores) {
  const std::string error = ErrorOf(R"(base_config: "configs/tiny.textproto"
axis { name: "a" value { label: "lr_high" } }
)");
  EXPECT_TRUE(absl::StartsWith(error, "sweeps/ablation.textproto:2:")) << error;
  EXPECT_TRUE(absl::StrContains(error, "label 'lr_high' must be")) << error;
  const std::string empty = ErrorOf(R"(base_config: "configs/tiny.textproto"
axis { name: "a" value { overrides { seed: 3 } } }
)");
  EXPECT_TRUE(absl::StartsWith(empty, "sweeps/ablation.textproto:2:")) << empty;
  EXPECT_TRUE(absl::StrContains(empty, "label '' must be")) << empty;
}

TEST(SweepTest, StructuralErrorsNameTheField) {
  EXPECT_TRUE(absl::StrContains(ErrorOf("axis { name: \"a\" value { label: \"x\" } }"),
                                "sweeps/ablation.textproto: base_config (the config file) is "
                                "required"));
  EXPECT_TRUE(absl::StrContains(ErrorOf("base_config: \"configs/tiny.textproto\""),
                                "needs at least one axis"));
  EXPECT_TRUE(absl::StrContains(
      ErrorOf("base_config: \"configs/tiny.textproto\"\naxis { name: \"lr\" }"),
      "sweeps/ablation.textproto:2:8: axis[0] 'lr': needs at least one value"));
  EXPECT_TRUE(absl::StrContains(
      ErrorOf("base_config: \"configs/tiny.textproto\"\naxis { value { label: \"x\" } }"),
      "axis[0]: name is required"));
  EXPECT_TRUE(absl::StrContains(
      ErrorOf("base_config: \"configs/tiny.textproto\"\nname: \"a/b\"\n"
              "axis { name: \"x\" value { label: \"y\" } }"),
      "sweeps/ablation.textproto:2:1: name 'a/b' cannot name the sweep's folder"));
}

TEST(SweepTest, MissingBaseConfigNamesTheSweepLine) {
  const std::string error = ErrorOf(R"(axis { name: "a" value { label: "x" } }
base_config: "configs/no_such.textproto"
)");
  EXPECT_TRUE(absl::StartsWith(error, "sweeps/ablation.textproto:2:1: base_config: ")) << error;
  EXPECT_TRUE(absl::StrContains(error, "configs/no_such.textproto")) << error;
}

TEST(SweepTest, InvalidMergedConfigNamesTheRunAndWhereEachFragmentCameFrom) {
  const std::string error = ErrorOf(R"(base_config: "configs/tiny.textproto"
overrides { train { steps: 5 } }
axis {
  name: "heads"
  value { label: "h4" }
  value { label: "h5" overrides { model { n_heads: 5 } } }
}
)");
  EXPECT_TRUE(absl::StartsWith(error, "sweeps/ablation.textproto: run h5 (--set[1] = the sweep's "
                                      "overrides, --set[2] = axis 'heads' value 'h5'): "))
      << error;
  EXPECT_TRUE(absl::StrContains(error, "n_heads")) << error;
}

}  // namespace
}  // namespace sinklab

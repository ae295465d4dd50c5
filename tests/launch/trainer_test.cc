// End-to-end CPU training on the bundled corpus with a shrunken tiny config.
#include "launch/trainer.h"

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "configs/config_loader.h"
#include "configs/config_writer.h"
#include "core/file_util.h"
#include "gtest/gtest.h"
#include "launch/commands.h"
#include "launch/model_io.h"

namespace sinklab {
namespace {

std::string TestRoot(const std::string& tag) {
  return absl::StrCat(::testing::TempDir(), "/trainer_test_", ::getpid(), "_", tag);
}

// A fast variant of the default job: 12 steps of 4 x 32 tokens.
Config SmallTinyConfig(const std::string& run_root) {
  absl::StatusOr<Config> config = LoadEmbeddedTinyConfig(
      {"train { steps: 12 batch_size: 4 micro_batch_size: 2 log_every: 4 eval_every: 6 "
       "eval_batches: 2 }",
       "data { seq_len: 32 } optim { warmup_steps: 3 } stats { window: 16 }",
       absl::StrCat("train { run_root: '", run_root, "' }")});
  EXPECT_TRUE(config.ok()) << config.status();
  return *config;
}

int CountLines(const std::string& path) {
  std::ifstream in(path);
  int lines = 0;
  for (std::string line; std::getline(in, line);) ++lines;
  return lines;
}

TEST(TrainerTest, SameConfigAndSeedGiveBitIdenticalLosses) {
  TrainOptions options;
  options.print_progress = false;
  const absl::StatusOr<TrainResult> a = Train(SmallTinyConfig(TestRoot("a")), options);
  const absl::StatusOr<TrainResult> b = Train(SmallTinyConfig(TestRoot("b")), options);
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  ASSERT_EQ(a->step_losses.size(), 12u);
  for (size_t i = 0; i < a->step_losses.size(); ++i) {
    EXPECT_EQ(a->step_losses[i], b->step_losses[i]) << "step " << i;  // bit-identical
  }
  EXPECT_EQ(a->final_val_loss, b->final_val_loss);
}

TEST(TrainerTest, LossStartsNearLnVocabAndFalls) {
  TrainOptions options;
  options.print_progress = false;
  const absl::StatusOr<TrainResult> result = Train(SmallTinyConfig(TestRoot("fall")), options);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_NEAR(result->step_losses.front(), std::log(264.0), 0.3);
  EXPECT_LT(result->step_losses.back(), result->step_losses.front() - 1.0);
}

TEST(TrainerTest, RunDirectoryHoldsResolvedConfigMetricsAndLoadableWeights) {
  TrainOptions options;
  options.print_progress = false;
  const std::string root = TestRoot("dir");
  const absl::StatusOr<TrainResult> result = Train(SmallTinyConfig(root), options);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->run_dir, root + "/tiny");
  // The saved config is complete: it reloads to the same config.
  const absl::StatusOr<Config> saved = LoadConfig(result->run_dir + "/config.textproto", {});
  ASSERT_TRUE(saved.ok()) << saved.status();
  EXPECT_EQ(saved->train().steps(), 12);
  EXPECT_EQ(saved->SerializeAsString(),
            ResolveConfigDefaults(SmallTinyConfig(root)).SerializeAsString());
  // Steps 4, 6 (eval), 8, 12 are logged.
  EXPECT_EQ(CountLines(result->run_dir + "/metrics.jsonl"), 4);
  // The weights evaluate through the eval verb (the config comes from their metadata).
  EvalCommand eval;
  eval.weights = result->run_dir + "/model.safetensors";
  eval.device = "cpu";
  EXPECT_TRUE(RunEval(eval).ok());
  const absl::StatusOr<Config> stored = ReadWeightsConfig(eval.weights, {});
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_EQ(stored->model().d_model(), 128);
}

// The host reads the losses only at log, eval and checkpoint steps (launch/step_scalars.h),
// yet every step's loss is reported, and the first step with a non-finite loss or gradient
// norm is named. lr 1e38 with weight decay overflows the weights at the first update.
TEST(TrainerTest, EveryStepLossIsKeptAndDivergenceNamesItsFirstStep) {
  Config config = SmallTinyConfig(TestRoot("rare_logs"));
  config.mutable_train()->set_log_every(100);
  config.mutable_train()->set_eval_every(0);
  TrainOptions options;
  options.print_progress = false;
  const absl::StatusOr<TrainResult> result = Train(config, options);
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->step_losses.size(), 12u);
  const absl::StatusOr<TrainResult> reference = Train(SmallTinyConfig(TestRoot("ref")), options);
  ASSERT_TRUE(reference.ok()) << reference.status();
  EXPECT_EQ(result->step_losses, reference->step_losses);

  Config diverging = SmallTinyConfig(TestRoot("diverge"));
  diverging.mutable_optim()->set_lr(1e38f);
  const absl::StatusOr<TrainResult> diverged = Train(diverging, options);
  ASSERT_FALSE(diverged.ok());
  EXPECT_NE(diverged.status().message().find("training diverged at step 2: "), std::string::npos)
      << diverged.status();
}

TEST(TrainerTest, MissingCorpusIsRefusedNamingTheFileBeforeAnyRunDirectory) {
  Config config = SmallTinyConfig(TestRoot("missing"));
  config.mutable_data()->set_text_corpus("data/corpus/does_not_exist.txt");
  TrainOptions options;
  options.print_progress = false;
  const absl::StatusOr<TrainResult> result = Train(config, options);
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.status().message().find("data/corpus/does_not_exist.txt"), std::string::npos)
      << result.status();
  EXPECT_FALSE(std::filesystem::exists(TestRoot("missing")));
}

TEST(TrainerTest, MuonOnAVectorIsRefusedBeforeAnyRunDirectory) {
  Config config = SmallTinyConfig(TestRoot("muon_vector"));
  ParamOverride* override_rule = config.mutable_optim()->add_param_override();
  override_rule->set_name("final_norm");
  override_rule->set_optimizer(MUON);
  TrainOptions options;
  options.print_progress = false;
  const absl::StatusOr<TrainResult> result = Train(config, options);
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.status().message().find("final_norm"), std::string::npos) << result.status();
  EXPECT_FALSE(std::filesystem::exists(TestRoot("muon_vector")));
}

}  // namespace
}  // namespace sinklab

// Data-parallel training pieces that a single process can check: the world-size rules of
// the batch (configs/config_util.h), ZeRO-1 and distributed Muon on one rank (the same run as
// without them, bit for bit, also across a resume), an exact run directory, and the planted
// failure hook. The multi-rank runs are in tests/dist/ (under mpirun).
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "configs/config_loader.h"
#include "configs/config_util.h"
#include "core/safetensors.h"
#include "gtest/gtest.h"
#include "launch/distributed.h"
#include "launch/trainer.h"

namespace sinklab {
namespace {

std::string TestRoot(const std::string& tag) {
  return absl::StrCat(::testing::TempDir(), "/data_parallel_test_", ::getpid(), "_", tag);
}

Config SmallConfig(const std::string& run_root, const std::string& extra) {
  absl::StatusOr<Config> config = LoadEmbeddedTinyConfig(
      {"train { steps: 4 batch_size: 4 micro_batch_size: 2 log_every: 2 eval_every: 2 "
       "eval_batches: 2 }",
       "data { seq_len: 32 } optim { warmup_steps: 2 } stats { every: 2 window: 16 }",
       "checkpoint { every: 2 keep: 0 } distributed { bucket_mb: 0.01 }",
       absl::StrCat("train { run_root: '", run_root, "' }"), extra});
  EXPECT_TRUE(config.ok()) << config.status();
  return *config;
}

TrainResult TrainQuietly(const Config& config, TrainOptions options = {}) {
  options.print_progress = false;
  absl::StatusOr<TrainResult> result = Train(config, options);
  EXPECT_TRUE(result.ok()) << result.status();
  return result.ok() ? *result : TrainResult{};
}

// The bytes of every tensor of a weights file, in order.
std::string WeightBytes(const std::string& path) {
  absl::StatusOr<SafetensorsFile> file = SafetensorsFile::Read(path);
  EXPECT_TRUE(file.ok()) << file.status();
  std::string bytes;
  if (!file.ok()) return bytes;
  for (const std::string& name : file->names()) {
    const SafetensorsEntry entry = *file->Get(name);
    bytes.append(static_cast<const char*>(entry.data), entry.nbytes);
  }
  return bytes;
}

TEST(DataParallelConfigTest, MicroBatchAndAccumulationFollowTheWorldSize) {
  TrainConfig train;
  train.set_batch_size(16);
  EXPECT_EQ(MicroBatchSize(train, 1), 16);  // micro_batch_size 0: the per-rank share
  EXPECT_EQ(MicroBatchSize(train, 4), 4);
  EXPECT_EQ(GradAccumSteps(train, 4), 1);
  train.set_micro_batch_size(2);
  EXPECT_EQ(MicroBatchSize(train, 4), 2);
  EXPECT_EQ(GradAccumSteps(train, 1), 8);
  EXPECT_EQ(GradAccumSteps(train, 2), 4);
  EXPECT_EQ(GradAccumSteps(train, 8), 1);
}

TEST(DataParallelConfigTest, BatchThatDoesNotSplitOverTheRanksIsRefusedNamingTheFields) {
  Config config;
  config.mutable_train()->set_batch_size(6);
  EXPECT_TRUE(ValidateForWorldSize(config, 2).ok());
  EXPECT_TRUE(ValidateForWorldSize(config, 3).ok());
  const absl::Status four = ValidateForWorldSize(config, 4);
  EXPECT_EQ(four.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(four.message(), "train.batch_size=6 is not divisible by the "
                                                "world size 4"))
      << four;
  config.mutable_train()->set_micro_batch_size(2);
  EXPECT_TRUE(ValidateForWorldSize(config, 3).ok());  // 3 ranks x 2 x 1 accumulation
  const absl::Status two = ValidateForWorldSize(config, 2);
  EXPECT_TRUE(absl::StrContains(two.message(), "train.batch_size=6 is not divisible by world "
                                               "size 2 x train.micro_batch_size=2"))
      << two;
  config.mutable_train()->set_micro_batch_size(0);
  config.mutable_distributed()->set_bucket_mb(0);
  EXPECT_TRUE(absl::StrContains(ValidateForWorldSize(config, 1).message(),
                                "distributed.bucket_mb=0 must be > 0"));
}

TEST(DataParallelTest, Zero1AndDistributedMuonOnOneRankAreTheSameRunBitForBit) {
  for (const std::string optim : {"", "optim { matrix_optimizer: MUON muon { lr: 0.02 } }"}) {
    const TrainResult plain = TrainQuietly(SmallConfig(TestRoot("plain"), optim));
    const TrainResult zero1 =
        TrainQuietly(SmallConfig(TestRoot("zero1"), optim + " distributed { zero1: true }"));
    ASSERT_EQ(plain.step_losses.size(), 4u) << optim;
    EXPECT_EQ(zero1.step_losses, plain.step_losses) << optim;
    EXPECT_EQ(zero1.final_val_loss, plain.final_val_loss) << optim;
    EXPECT_EQ(WeightBytes(zero1.run_dir + "/model.safetensors"),
              WeightBytes(plain.run_dir + "/model.safetensors"))
        << optim;
    // The gathered checkpoint holds the single-process state: the same tensors, same bytes.
    EXPECT_EQ(WeightBytes(zero1.run_dir + "/ckpt_00000004/state.safetensors"),
              WeightBytes(plain.run_dir + "/ckpt_00000004/state.safetensors"))
        << optim;
  }
}

TEST(DataParallelTest, Zero1RunResumesBitForBit) {
  const std::string extra =
      "optim { matrix_optimizer: MUON muon { lr: 0.02 } } distributed { zero1: true }";
  const TrainResult whole = TrainQuietly(SmallConfig(TestRoot("whole"), extra));
  const Config config = SmallConfig(TestRoot("parts"), extra);
  TrainOptions first;
  first.stop_at_step = 2;
  const TrainResult part1 = TrainQuietly(config, first);
  TrainOptions second;
  second.resume_dir = part1.run_dir;
  const TrainResult part2 = TrainQuietly(config, second);
  ASSERT_EQ(part2.step_losses.size(), 2u);
  EXPECT_EQ(part2.step_losses[0], whole.step_losses[2]);
  EXPECT_EQ(part2.step_losses[1], whole.step_losses[3]);
  EXPECT_EQ(WeightBytes(part2.run_dir + "/model.safetensors"),
            WeightBytes(whole.run_dir + "/model.safetensors"));
}

TEST(DataParallelTest, GivenRunDirectoryIsUsedAsIs) {
  TrainOptions options;
  options.run_dir = TestRoot("given") + "/sweep/a_b";
  const TrainResult result = TrainQuietly(SmallConfig(TestRoot("unused"), ""), options);
  EXPECT_EQ(result.run_dir, options.run_dir);
  EXPECT_TRUE(std::filesystem::exists(options.run_dir + "/model.safetensors"));
  EXPECT_FALSE(std::filesystem::exists(TestRoot("unused")));
}

TEST(DataParallelTest, PlantedFailureStopsTheNamedRankAtTheNamedStep) {
  EXPECT_TRUE(PlantedFailureForTests(0, 1).ok());  // no SINKLAB_FAIL_RANK
  ::setenv("SINKLAB_FAIL_RANK", "0", 1);
  ::setenv("SINKLAB_FAIL_STEP", "3", 1);
  EXPECT_TRUE(PlantedFailureForTests(1, 3).ok());  // another rank
  EXPECT_TRUE(PlantedFailureForTests(0, 2).ok());  // another step
  const absl::Status planted = PlantedFailureForTests(0, 3);
  EXPECT_EQ(planted.code(), absl::StatusCode::kInternal);
  EXPECT_EQ(planted.message(), "planted failure on rank 0 at step 3 (SINKLAB_FAIL_RANK, status)");
  TrainOptions quiet;
  quiet.print_progress = false;
  absl::StatusOr<TrainResult> result = Train(SmallConfig(TestRoot("planted"), ""), quiet);
  ::unsetenv("SINKLAB_FAIL_RANK");
  ::unsetenv("SINKLAB_FAIL_STEP");
  EXPECT_EQ(result.status(), planted);
}

}  // namespace
}  // namespace sinklab

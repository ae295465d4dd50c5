// Data-parallel training (run under mpirun -np 2): the global batch is fixed by the config, so
// 2 ranks x accumulation 1 must give the losses and weights of 1 rank x accumulation 2, with
// and without ZeRO-1, with AdamW and with (distributed) Muon; and a run resumed from a
// checkpoint written under ZeRO-1 continues bit for bit.
//
// Tolerance: the two runs sum the same per-sequence gradients in another order (two partial
// sums joined by MPI_Allreduce, vs one accumulation), so they differ by fp32 rounding only.
// Losses and gradient norms must agree to 1e-5 relative and every weight to 1e-5 absolute
// after 4 steps (the weights are O(0.1); an update of lr 3e-3 applied to a wrong gradient
// would move them by ~1e-3). The runs below show weight differences near 1e-7.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "configs/config_loader.h"
#include "configs/config_util.h"
#include "gtest/gtest.h"
#include "launch/trainer.h"
#include "tests/dist/mpi_env.h"
#include "tests/dist/run_outputs.h"

namespace sinklab {
namespace {

constexpr float kLossRelTolerance = 1e-5f;
constexpr float kWeightTolerance = 1e-5f;

// 4 steps of 4 sequences x 32 tokens; micro-batch 2, so 1 rank accumulates 2 and 2 ranks 1.
// Evaluation and statistics at step 2 and 4 exercise the collective eval and update stats.
Config SmallConfig(const std::string& run_root, const std::string& extra) {
  absl::StatusOr<Config> config = LoadEmbeddedTinyConfig(
      {"train { steps: 4 batch_size: 4 micro_batch_size: 2 log_every: 1 eval_every: 2 "
       "eval_batches: 3 }",
       "data { seq_len: 32 } optim { warmup_steps: 2 } stats { every: 2 window: 16 }",
       "checkpoint { every: 0 } distributed { bucket_mb: 0.05 }",  // several buckets
       absl::StrCat("train { run_root: '", run_root, "' }"), extra});
  CheckOkOrAbort(config.status());
  return *config;
}

TrainResult TrainOrAbort(const Config& config, TrainOptions options) {
  options.print_progress = false;
  absl::StatusOr<TrainResult> result = Train(config, options);
  CheckOkOrAbort(result.status());
  return *result;
}

// Trains `extra` on every rank together, then on rank 0 alone, and compares.
void ExpectTwoRanksMatchOneRank(const std::string& tag, const std::string& extra) {
  Communicator& world = World();
  ASSERT_EQ(world.world_size(), 2) << "written for mpirun -np 2";
  const Config config = SmallConfig(SharedTestRoot(tag + "_2ranks"), extra);
  ASSERT_EQ(GradAccumSteps(config.train(), 1), 2);
  ASSERT_EQ(GradAccumSteps(config.train(), 2), 1);
  TrainOptions options;
  options.comm = &world;
  const TrainResult two = TrainOrAbort(config, options);
  world.Barrier();
  if (world.rank() == 0) {
    const Config single = SmallConfig(LocalTestRoot(tag + "_1rank"), extra);
    const TrainResult one = TrainOrAbort(single, TrainOptions());
    ASSERT_EQ(one.step_losses.size(), 4u);
    ASSERT_EQ(two.step_losses.size(), 4u);
    for (size_t i = 0; i < 4; ++i) {
      EXPECT_NEAR(two.step_losses[i], one.step_losses[i],
                  kLossRelTolerance * std::fabs(one.step_losses[i]))
          << "step " << i + 1;
    }
    EXPECT_NEAR(two.final_val_loss, one.final_val_loss,
                kLossRelTolerance * std::fabs(one.final_val_loss));
    const std::vector<double> two_norms = GradNorms(two.run_dir);
    const std::vector<double> one_norms = GradNorms(one.run_dir);
    ASSERT_EQ(two_norms.size(), 4u);
    ASSERT_EQ(one_norms.size(), 4u);
    for (size_t i = 0; i < 4; ++i) {
      EXPECT_NEAR(two_norms[i], one_norms[i], kLossRelTolerance * one_norms[i])
          << "step " << i + 1;
    }
    const float diff = MaxWeightDifference(two.run_dir + "/model.safetensors",
                                           one.run_dir + "/model.safetensors");
    EXPECT_LE(diff, kWeightTolerance);
    std::printf("[ %s ] 2 ranks vs 1: final loss %.7f vs %.7f, max weight difference %.3g\n",
                tag.c_str(), two.step_losses.back(), one.step_losses.back(), diff);
  } else {
    EXPECT_EQ(two.step_losses.size(), 4u);  // every rank gets the global losses
  }
  world.Barrier();
}

TEST(DataParallelTest, TwoRanksMatchOneRankWithAccumulation) {
  ExpectTwoRanksMatchOneRank("adamw", "");
}

TEST(DataParallelTest, TwoRanksWithZero1MatchOneRank) {
  ExpectTwoRanksMatchOneRank("adamw_zero1", "distributed { zero1: true }");
}

TEST(DataParallelTest, TwoRanksWithDistributedMuonMatchOneRank) {
  ExpectTwoRanksMatchOneRank("muon", "optim { matrix_optimizer: MUON muon { lr: 0.02 } }");
}

TEST(DataParallelTest, TwoRanksWithMuonAndZero1MatchOneRank) {
  ExpectTwoRanksMatchOneRank("muon_zero1",
                             "optim { matrix_optimizer: MUON muon { lr: 0.02 } } "
                             "distributed { zero1: true }");
}

TEST(DataParallelTest, ResumeUnderZero1AndMuonContinuesBitForBit) {
  Communicator& world = World();
  const std::string extra =
      "optim { matrix_optimizer: MUON muon { lr: 0.02 } } distributed { zero1: true } "
      "checkpoint { every: 2 keep: 0 }";
  TrainOptions options;
  options.comm = &world;
  const TrainResult whole = TrainOrAbort(SmallConfig(SharedTestRoot("whole"), extra), options);

  const Config config = SmallConfig(SharedTestRoot("resumed"), extra);
  TrainOptions first = options;
  first.stop_at_step = 2;
  const TrainResult part1 = TrainOrAbort(config, first);
  TrainOptions second = options;
  second.resume_dir = part1.run_dir;
  const TrainResult part2 = TrainOrAbort(config, second);
  EXPECT_EQ(part2.first_step, 2);
  ASSERT_EQ(part2.step_losses.size(), 2u);
  EXPECT_EQ(part2.step_losses[0], whole.step_losses[2]);  // bit-identical
  EXPECT_EQ(part2.step_losses[1], whole.step_losses[3]);
  if (world.rank() == 0) {
    EXPECT_EQ(MaxWeightDifference(whole.run_dir + "/model.safetensors",
                                  part2.run_dir + "/model.safetensors"),
              0.0f);
  }
  world.Barrier();
}

}  // namespace
}  // namespace sinklab

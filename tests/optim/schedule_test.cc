#include "optim/schedule.h"

#include "gtest/gtest.h"

namespace sinklab {
namespace {

OptimConfig Config(OptimConfig::Schedule schedule) {
  OptimConfig config;
  config.set_schedule(schedule);
  config.set_lr(1e-3f);
  config.set_warmup_steps(10);
  config.set_min_lr_ratio(0.1f);
  config.set_decay_fraction(0.2f);
  return config;
}

TEST(ScheduleTest, WarmupRisesLinearlyFromLrOverWarmupToPeak) {
  for (const auto schedule : {OptimConfig::COSINE, OptimConfig::WSD, OptimConfig::CONSTANT}) {
    const OptimConfig config = Config(schedule);
    const double lr = config.lr();
    EXPECT_FLOAT_EQ(LearningRate(config, 0, 100), lr / 10) << schedule;
    EXPECT_FLOAT_EQ(LearningRate(config, 4, 100), lr * 5 / 10) << schedule;
    EXPECT_FLOAT_EQ(LearningRate(config, 9, 100), lr) << schedule;
  }
}

TEST(ScheduleTest, CosineGoesFromPeakAtWarmupEndToFloorAtLastStep) {
  const OptimConfig config = Config(OptimConfig::COSINE);
  const double lr = config.lr();
  const double floor = lr * config.min_lr_ratio();
  // 101 steps: the decay spans steps 10..100 (90 intervals); its midpoint is step 55.
  EXPECT_FLOAT_EQ(LearningRate(config, 10, 101), lr);
  EXPECT_FLOAT_EQ(LearningRate(config, 55, 101), (lr + floor) / 2);
  EXPECT_FLOAT_EQ(LearningRate(config, 100, 101), floor);
  // A third of the way (step 40): floor + (lr - floor) (1 + cos(pi / 3)) / 2 = .75 of the way.
  EXPECT_FLOAT_EQ(LearningRate(config, 40, 101), floor + (lr - floor) * 0.75);
  // Past the end it stays at the floor.
  EXPECT_FLOAT_EQ(LearningRate(config, 150, 101), floor);
}

TEST(ScheduleTest, CosineDecaysStrictlyMonotonicallyAfterWarmup) {
  const OptimConfig config = Config(OptimConfig::COSINE);
  for (int64_t step = 10; step + 1 < 1000; ++step) {
    EXPECT_LT(LearningRate(config, step + 1, 1000), LearningRate(config, step, 1000)) << step;
  }
}

TEST(ScheduleTest, CosineWithoutWarmupStartsAtPeak) {
  OptimConfig config = Config(OptimConfig::COSINE);
  config.set_warmup_steps(0);
  EXPECT_FLOAT_EQ(LearningRate(config, 0, 50), config.lr());
  EXPECT_FLOAT_EQ(LearningRate(config, 49, 50), config.lr() * config.min_lr_ratio());
}

TEST(ScheduleTest, WsdHoldsPlateauThenDecaysLinearlyOverTheLastFifthToFloor) {
  const OptimConfig config = Config(OptimConfig::WSD);
  const double lr = config.lr();
  const double floor = lr * config.min_lr_ratio();
  // 100 steps, decay_fraction 0.2: decay over steps 80..99.
  ASSERT_EQ(WsdDecayStart(config, 100), 80);
  for (int64_t step = 10; step < 80; ++step) {
    EXPECT_FLOAT_EQ(LearningRate(config, step, 100), lr) << step;
  }
  EXPECT_FLOAT_EQ(LearningRate(config, 80, 100), lr - (lr - floor) / 20);
  EXPECT_LT(LearningRate(config, 80, 100), lr);
  EXPECT_FLOAT_EQ(LearningRate(config, 89, 100), lr - (lr - floor) * 10 / 20);
  EXPECT_FLOAT_EQ(LearningRate(config, 99, 100), floor);
  // Linear: equal drops each step.
  const double drop = LearningRate(config, 80, 100) - LearningRate(config, 81, 100);
  for (int64_t step = 81; step < 99; ++step) {
    EXPECT_NEAR(LearningRate(config, step, 100) - LearningRate(config, step + 1, 100), drop,
                1e-9) << step;
  }
  EXPECT_FLOAT_EQ(LearningRate(config, 120, 100), floor);
}

TEST(ScheduleTest, WsdDecayNeverStartsInsideWarmup) {
  OptimConfig config = Config(OptimConfig::WSD);
  config.set_decay_fraction(1.0f);
  EXPECT_EQ(WsdDecayStart(config, 30), 10);
  EXPECT_FLOAT_EQ(LearningRate(config, 9, 30), config.lr());
  EXPECT_FLOAT_EQ(LearningRate(config, 29, 30), config.lr() * config.min_lr_ratio());
}

TEST(ScheduleTest, ConstantHoldsPeakAfterWarmup) {
  const OptimConfig config = Config(OptimConfig::CONSTANT);
  for (int64_t step : {10, 50, 99, 500}) {
    EXPECT_FLOAT_EQ(LearningRate(config, step, 100), config.lr()) << step;
  }
}

TEST(ScheduleTest, LrMultiplierIsTheScheduleWithPeakOne) {
  for (const auto schedule : {OptimConfig::COSINE, OptimConfig::WSD, OptimConfig::CONSTANT}) {
    const OptimConfig config = Config(schedule);
    EXPECT_FLOAT_EQ(LrMultiplier(config, 0, 100), 0.1f) << schedule;  // warmup 1/10
    EXPECT_FLOAT_EQ(LrMultiplier(config, 9, 100), 1.0f) << schedule;
    EXPECT_FLOAT_EQ(LrMultiplier(config, 99, 100), schedule == OptimConfig::CONSTANT ? 1.0f : 0.1f)
        << schedule;
    for (int64_t step = 0; step < 120; ++step) {
      EXPECT_FLOAT_EQ(config.lr() * LrMultiplier(config, step, 100),
                      LearningRate(config, step, 100))
          << schedule << " " << step;
    }
  }
}

}  // namespace
}  // namespace sinklab

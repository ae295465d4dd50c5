// StepScalars: per-step losses and norms written into device slots, read back in one go,
// each step's micro-batch losses averaged in double.
#include "launch/step_scalars.h"

#include <memory>
#include <vector>

#include "core/comm.h"
#include "gtest/gtest.h"

namespace sinklab {
namespace {

TEST(StepScalarsTest, ReadsThePendingStepsInOrderAndAveragesTheMicroBatches) {
  Arena arena(Device::kCpu, size_t{1} << 16);
  StepScalars scalars(&arena, /*capacity=*/3, /*accum=*/2);
  const std::unique_ptr<Communicator> comm = MakeSingleProcessCommunicator();
  for (int64_t step = 7; step <= 9; ++step) {
    EXPECT_FALSE(scalars.full());
    scalars.Begin(step);
    scalars.LossSlot(0).f32()[0] = static_cast<float>(step);
    scalars.LossSlot(1).f32()[0] = static_cast<float>(step) + 0.5f;
    scalars.NormSlot().f32()[0] = 10.0f * static_cast<float>(step);
  }
  EXPECT_TRUE(scalars.full());
  const std::vector<StepScalar> read = scalars.Read(*comm);
  ASSERT_EQ(read.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(read[i].step, 7 + i);
    EXPECT_EQ(read[i].loss, 7.25f + i);
    EXPECT_EQ(read[i].grad_norm, 70.0f + 10.0f * i);
  }
  EXPECT_EQ(scalars.pending(), 0);
  EXPECT_TRUE(scalars.Read(*comm).empty());
  scalars.Begin(10);  // a new interval may start anywhere after a read
  scalars.LossSlot(0).f32()[0] = 1.0f;
  scalars.LossSlot(1).f32()[0] = 2.0f;
  scalars.NormSlot().f32()[0] = 3.0f;
  const std::vector<StepScalar> next = scalars.Read(*comm);
  ASSERT_EQ(next.size(), 1u);
  EXPECT_EQ(next[0].step, 10);
  EXPECT_EQ(next[0].loss, 1.5f);
}

TEST(StepScalarsDeathTest, RefusesAStepOutOfOrderOrBeyondItsCapacity) {
  Arena arena(Device::kCpu, size_t{1} << 16);
  StepScalars scalars(&arena, /*capacity=*/2, /*accum=*/1);
  scalars.Begin(1);
  EXPECT_DEATH(scalars.Begin(3), "step 3 after 1");
  scalars.Begin(2);
  EXPECT_DEATH(scalars.Begin(3), "read the pending steps first");
}

}  // namespace
}  // namespace sinklab

// The helpers that turn special stored values (0, empty) into effective ones.
#include "configs/config_util.h"

#include <vector>

#include "gtest/gtest.h"

namespace sinklab {
namespace {

TEST(ConfigUtilTest, HeadDimIsDModelOverHeads) {
  ModelConfig model;
  model.set_d_model(768);
  model.set_n_heads(12);
  EXPECT_EQ(HeadDim(model), 64);
}

TEST(ConfigUtilTest, KvHeadsZeroMeansNHeads) {
  ModelConfig model;
  model.set_n_heads(12);
  EXPECT_EQ(KvHeads(model), 12);
  model.set_n_kv_heads(4);
  EXPECT_EQ(KvHeads(model), 4);
}

TEST(ConfigUtilTest, MicroBatchZeroMeansBatchAndSetsAccumulation) {
  TrainConfig train;
  train.set_batch_size(32);
  EXPECT_EQ(MicroBatchSize(train), 32);
  EXPECT_EQ(GradAccumSteps(train), 1);
  train.set_micro_batch_size(8);
  EXPECT_EQ(MicroBatchSize(train), 8);
  EXPECT_EQ(GradAccumSteps(train), 4);
}

TEST(ConfigUtilTest, EmptySinkEpsMeansPointThree) {
  StatsConfig stats;
  EXPECT_EQ(SinkEpsList(stats), std::vector<float>({0.3f}));
  stats.add_eps(0.1f);
  stats.add_eps(0.5f);
  EXPECT_EQ(SinkEpsList(stats), std::vector<float>({0.1f, 0.5f}));
}

}  // namespace
}  // namespace sinklab

#include "data/loader.h"

#include <algorithm>
#include <numeric>
#include <set>
#include <vector>

#include "core/rng.h"
#include "gtest/gtest.h"

namespace sinklab {
namespace {

constexpr int kSeqLen = 8;

// Token i is i, so a row's first input names its window: window = inputs[0] / seq_len.
std::vector<uint32_t> IdentityTokens(int n) {
  std::vector<uint32_t> tokens(n);
  std::iota(tokens.begin(), tokens.end(), 0u);
  return tokens;
}

struct Batch {
  std::vector<int32_t> inputs, targets;
  bool operator==(const Batch& other) const {
    return inputs == other.inputs && targets == other.targets;
  }
};

Batch Get(Loader& loader, int64_t step, int micro_step, int micro_batch) {
  Batch batch{std::vector<int32_t>(micro_batch * loader.seq_len()),
              std::vector<int32_t>(micro_batch * loader.seq_len())};
  loader.GetBatch(step, micro_step, micro_batch, batch.inputs.data(), batch.targets.data());
  return batch;
}

// Windows of the rows of `batch` (IdentityTokens only).
std::vector<int> Windows(const Batch& batch) {
  std::vector<int> windows;
  for (size_t row = 0; row < batch.inputs.size() / kSeqLen; ++row) {
    windows.push_back(batch.inputs[row * kSeqLen] / kSeqLen);
  }
  return windows;
}

TEST(LoaderTest, RowsAreWholeWindowsAndTargetsAreInputsShiftedByOne) {
  const std::vector<uint32_t> tokens = IdentityTokens(1000);  // (1000 - 1) / 8 = 124 windows
  Loader loader(&tokens, kSeqLen, 4, /*seed=*/1, /*rank=*/0, /*world_size=*/1);
  EXPECT_EQ(loader.num_windows(), 124);
  for (int step = 0; step < 40; ++step) {
    const Batch batch = Get(loader, step, 0, 4);
    for (int row = 0; row < 4; ++row) {
      const int start = batch.inputs[row * kSeqLen];
      ASSERT_EQ(start % kSeqLen, 0);
      ASSERT_LT(start / kSeqLen, 124);
      for (int t = 0; t < kSeqLen; ++t) {
        ASSERT_EQ(batch.inputs[row * kSeqLen + t], start + t);
        ASSERT_EQ(batch.targets[row * kSeqLen + t], start + t + 1);
      }
    }
  }
}

TEST(LoaderTest, SameArgumentsGiveSameBatchesAndOtherSeedsDiffer) {
  Rng rng(11, 0);
  std::vector<uint32_t> tokens(5000);
  for (uint32_t& t : tokens) t = static_cast<uint32_t>(rng.Below(257));
  Loader a(&tokens, kSeqLen, 8, 5, 0, 1), b(&tokens, kSeqLen, 8, 5, 0, 1);
  Loader other_seed(&tokens, kSeqLen, 8, 6, 0, 1);
  const Batch first = Get(a, 3, 1, 4);
  EXPECT_EQ(Get(a, 3, 1, 4), first);  // same step twice
  EXPECT_EQ(Get(b, 3, 1, 4), first);  // a fresh loader
  EXPECT_FALSE(Get(other_seed, 3, 1, 4) == first);
  EXPECT_FALSE(Get(a, 4, 1, 4) == first);
}

TEST(LoaderTest, EachEpochVisitsEveryWindowOnceInANewOrder) {
  const std::vector<uint32_t> tokens = IdentityTokens(801);  // 100 windows
  Loader loader(&tokens, kSeqLen, 10, 3, 0, 1);
  std::vector<int64_t> epoch0, epoch1;
  for (int s = 0; s < 100; ++s) epoch0.push_back(loader.WindowOfSample(s));
  for (int s = 100; s < 200; ++s) epoch1.push_back(loader.WindowOfSample(s));
  EXPECT_NE(epoch0, epoch1);
  std::vector<int64_t> identity(100);
  std::iota(identity.begin(), identity.end(), 0);
  EXPECT_NE(epoch0, identity);
  std::sort(epoch0.begin(), epoch0.end());
  std::sort(epoch1.begin(), epoch1.end());
  EXPECT_EQ(epoch0, identity);
  EXPECT_EQ(epoch1, identity);
}

TEST(LoaderTest, RankSlicesAreDisjointAndTheirUnionIsTheSameStepForAnyWorldSize) {
  const std::vector<uint32_t> tokens = IdentityTokens(4001);  // 500 windows
  const int global_batch = 8;
  for (int step : {0, 7, 62, 63}) {  // 62 and 63 straddle the first epoch boundary
    // 1 rank x accumulation 2 (micro-batch 4).
    Loader single(&tokens, kSeqLen, global_batch, 9, 0, 1);
    std::vector<int> one_rank;
    for (int micro_step = 0; micro_step < 2; ++micro_step) {
      const std::vector<int> w = Windows(Get(single, step, micro_step, 4));
      one_rank.insert(one_rank.end(), w.begin(), w.end());
    }
    // 2 ranks x accumulation 1.
    std::vector<int> two_ranks;
    for (int rank = 0; rank < 2; ++rank) {
      Loader loader(&tokens, kSeqLen, global_batch, 9, rank, 2);
      const std::vector<int> w = Windows(Get(loader, step, 0, 4));
      two_ranks.insert(two_ranks.end(), w.begin(), w.end());
    }
    // 4 ranks x accumulation 2 (micro-batch 1).
    std::vector<int> four_ranks;
    for (int rank = 0; rank < 4; ++rank) {
      Loader loader(&tokens, kSeqLen, global_batch, 9, rank, 4);
      for (int micro_step = 0; micro_step < 2; ++micro_step) {
        four_ranks.push_back(Windows(Get(loader, step, micro_step, 1))[0]);
      }
    }
    const std::set<int> distinct(two_ranks.begin(), two_ranks.end());
    EXPECT_EQ(distinct.size(), 8u) << "rank slices overlap at step " << step;
    std::sort(one_rank.begin(), one_rank.end());
    std::sort(two_ranks.begin(), two_ranks.end());
    std::sort(four_ranks.begin(), four_ranks.end());
    EXPECT_EQ(one_rank, two_ranks) << "step " << step;
    EXPECT_EQ(one_rank, four_ranks) << "step " << step;
  }
}

TEST(LoaderTest, RestartAtAStepGivesTheBatchOfRunningThrough) {
  Rng rng(12, 0);
  std::vector<uint32_t> tokens(2000);  // 249 windows, so an epoch is ~15.5 steps of 16
  for (uint32_t& t : tokens) t = static_cast<uint32_t>(rng.Below(257));
  Loader running(&tokens, kSeqLen, 16, 4, 1, 2);
  std::vector<Batch> seen;
  for (int step = 0; step < 40; ++step) {
    for (int micro_step = 0; micro_step < 2; ++micro_step) {
      seen.push_back(Get(running, step, micro_step, 4));
    }
  }
  for (int step : {0, 15, 16, 31, 39}) {
    Loader restarted(&tokens, kSeqLen, 16, 4, 1, 2);
    EXPECT_EQ(Get(restarted, step, 1, 4), seen[step * 2 + 1]) << "step " << step;
  }
}

TEST(LoaderTest, EvalBatchesWalkWindowsInOrderPerRankAndWrap) {
  const std::vector<uint32_t> tokens = IdentityTokens(81);  // 10 windows
  Loader rank0(&tokens, kSeqLen, 4, 1, 0, 2), rank1(&tokens, kSeqLen, 4, 1, 1, 2);
  Batch batch{std::vector<int32_t>(3 * kSeqLen), std::vector<int32_t>(3 * kSeqLen)};
  rank0.GetEvalBatch(0, 3, batch.inputs.data(), batch.targets.data());
  EXPECT_EQ(Windows(batch), (std::vector<int>{0, 1, 2}));
  EXPECT_EQ(batch.targets[3 * kSeqLen - 1], 24);
  rank1.GetEvalBatch(0, 3, batch.inputs.data(), batch.targets.data());
  EXPECT_EQ(Windows(batch), (std::vector<int>{3, 4, 5}));
  rank1.GetEvalBatch(1, 3, batch.inputs.data(), batch.targets.data());
  EXPECT_EQ(Windows(batch), (std::vector<int>{9, 0, 1}));
}

}  // namespace
}  // namespace sinklab

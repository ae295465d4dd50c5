// The host-side pieces of GPU data parallelism: which GPU a rank takes (from the launcher's
// environment), how the gradients are cut into all-reduce buckets, and the NCCL timeout
// setting. Pure functions; they run in dist_tests on every rank without collectives.
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "core/comm.h"
#include "core/rng.h"
#include "gtest/gtest.h"
#include "launch/distributed.h"
#if SINKLAB_WITH_NCCL
#include "core/comm_nccl.h"
#endif

namespace sinklab {
namespace {

// A getenv over `values` (absent names are unset).
std::function<const char*(const char*)> FakeEnv(const std::map<std::string, std::string>& values) {
  return [values](const char* name) -> const char* {
    const auto it = values.find(name);
    return it == values.end() ? nullptr : it->second.c_str();
  };
}

TEST(GpuChoiceTest, LocalRankFromEachLauncher) {
  EXPECT_EQ(LocalRankFromEnvironment(FakeEnv({})), -1);
  EXPECT_EQ(LocalRankFromEnvironment(FakeEnv({{"OMPI_COMM_WORLD_LOCAL_RANK", "3"}})), 3);
  EXPECT_EQ(LocalRankFromEnvironment(FakeEnv({{"MPI_LOCALRANKID", "5"}})), 5);
  EXPECT_EQ(LocalRankFromEnvironment(FakeEnv({{"SLURM_LOCALID", "7"}})), 7);
  // Open MPI's own variable wins over the others.
  EXPECT_EQ(LocalRankFromEnvironment(
                FakeEnv({{"SLURM_LOCALID", "1"}, {"OMPI_COMM_WORLD_LOCAL_RANK", "2"}})),
            2);
  EXPECT_EQ(LocalRankFromEnvironment(FakeEnv({{"OMPI_COMM_WORLD_LOCAL_RANK", "x"}})), -1);
  EXPECT_EQ(LocalRankFromEnvironment(FakeEnv({{"OMPI_COMM_WORLD_LOCAL_RANK", "-1"}})), -1);
}

TEST(GpuChoiceTest, GpuIsLocalRankModuloDeviceCount) {
  EXPECT_EQ(GpuForLocalRank(0, 8), 0);
  EXPECT_EQ(GpuForLocalRank(7, 8), 7);
  EXPECT_EQ(GpuForLocalRank(9, 8), 1);
  EXPECT_EQ(GpuForLocalRank(3, 1), 0);
  // Under this test's mpirun the launcher sets the local rank of each process.
  if (StartedByMpiLauncher()) {
    EXPECT_GE(LocalRankFromEnvironment(std::getenv), 0);
  }
  EXPECT_GE(LocalRank(), 0);
}

// Every element of the concatenated tensors must land at flat index f of bucket
// f / bucket_elements, offset f % bucket_elements: the CPU path's cut (FlatView chunks).
void ExpectBucketsCutTheConcatenation(const std::vector<int64_t>& sizes, int64_t bucket_elements) {
  const std::vector<Bucket> buckets = PlanBuckets(sizes, bucket_elements);
  int64_t total = 0;
  for (int64_t size : sizes) total += size;
  ASSERT_EQ(static_cast<int64_t>(buckets.size()),
            (total + bucket_elements - 1) / bucket_elements);
  // Where each (tensor, element) went, from the plan.
  std::map<std::pair<int, int64_t>, std::pair<size_t, int64_t>> placed;
  for (size_t b = 0; b < buckets.size(); ++b) {
    int64_t filled = 0;
    for (const BucketSegment& segment : buckets[b].segments) {
      EXPECT_EQ(segment.bucket_offset, filled) << "bucket " << b << ": segments in order, no gaps";
      EXPECT_GT(segment.count, 0);
      for (int64_t i = 0; i < segment.count; ++i) {
        const auto key = std::make_pair(segment.tensor, segment.tensor_offset + i);
        EXPECT_EQ(placed.count(key), 0u) << "tensor " << key.first << " element " << key.second;
        placed[key] = {b, segment.bucket_offset + i};
      }
      filled += segment.count;
    }
    EXPECT_EQ(buckets[b].size, filled);
    EXPECT_LE(buckets[b].size, bucket_elements);
    if (b + 1 < buckets.size()) {
      EXPECT_EQ(buckets[b].size, bucket_elements);
    }
  }
  int64_t flat = 0;
  for (int t = 0; t < static_cast<int>(sizes.size()); ++t) {
    for (int64_t i = 0; i < sizes[t]; ++i, ++flat) {
      const auto it = placed.find({t, i});
      ASSERT_NE(it, placed.end()) << "tensor " << t << " element " << i << " not in any bucket";
      EXPECT_EQ(it->second.first, static_cast<size_t>(flat / bucket_elements));
      EXPECT_EQ(it->second.second, flat % bucket_elements);
    }
  }
  EXPECT_EQ(static_cast<int64_t>(placed.size()), total);
}

TEST(BucketPlanTest, RandomSizesAndBucketSizes) {
  Rng rng(/*seed=*/20261123, /*stream=*/7);
  for (int trial = 0; trial < 20; ++trial) {
    std::vector<int64_t> sizes(1 + static_cast<int>(rng.Uniform() * 12));
    for (int64_t& size : sizes) size = static_cast<int64_t>(rng.Uniform() * 300);
    sizes[sizes.size() / 2] = 0;  // an empty tensor gets no segment
    const int64_t bucket_elements = 1 + static_cast<int64_t>(rng.Uniform() * 400);
    ExpectBucketsCutTheConcatenation(sizes, bucket_elements);
  }
}

TEST(BucketPlanTest, EdgeCases) {
  EXPECT_TRUE(PlanBuckets({}, 16).empty());
  EXPECT_TRUE(PlanBuckets({0, 0}, 16).empty());
  ExpectBucketsCutTheConcatenation({16, 16}, 16);  // exactly full buckets
  ExpectBucketsCutTheConcatenation({5}, 1);        // one element per bucket
  const std::vector<Bucket> one = PlanBuckets({3, 4, 5}, 1000);  // all in one bucket
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0].size, 12);
  ASSERT_EQ(one[0].segments.size(), 3u);
  EXPECT_EQ(one[0].segments[2].tensor, 2);
  EXPECT_EQ(one[0].segments[2].bucket_offset, 7);
}

#if SINKLAB_WITH_NCCL
TEST(NcclTimeoutTest, ParsesSecondsOrDefaults) {
  EXPECT_EQ(*ParseNcclTimeoutSeconds(nullptr), kDefaultNcclTimeoutSeconds);
  EXPECT_EQ(*ParseNcclTimeoutSeconds("30"), 30.0);
  EXPECT_EQ(*ParseNcclTimeoutSeconds("0.5"), 0.5);
  EXPECT_FALSE(ParseNcclTimeoutSeconds("0").ok());
  EXPECT_FALSE(ParseNcclTimeoutSeconds("-3").ok());
  EXPECT_FALSE(ParseNcclTimeoutSeconds("ten").ok());
}
#endif

}  // namespace
}  // namespace sinklab

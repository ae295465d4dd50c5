// The MPI communicator's collectives with rank-dependent data (run under mpirun -np N >= 2).
#include <cstdint>
#include <numeric>
#include <vector>

#include "core/comm.h"
#include "gtest/gtest.h"
#include "tests/dist/mpi_env.h"

namespace sinklab {
namespace {

TEST(CommMpiTest, DescribesItsRankAndSize) {
  Communicator& world = World();
  EXPECT_GE(world.world_size(), 2);
  EXPECT_EQ(world.Describe(), "MPI rank " + std::to_string(world.rank()) + " of " +
                                  std::to_string(world.world_size()));
}

TEST(CommMpiTest, AllReduceSumsEveryRanksValuesInPlace) {
  Communicator& world = World();
  const int n = world.world_size(), r = world.rank();
  std::vector<float> f = {1.0f + r, 0.5f * r, -2.0f};
  std::vector<double> d = {0.25 * (r + 1), 1e10 + r};
  world.AllReduceSum(f.data(), 3);
  world.AllReduceSum(d.data(), 2);
  const double rank_sum = n * (n - 1) / 2.0;  // 0 + 1 + ... + (n - 1)
  EXPECT_FLOAT_EQ(f[0], n + rank_sum);
  EXPECT_FLOAT_EQ(f[1], 0.5 * rank_sum);
  EXPECT_FLOAT_EQ(f[2], -2.0f * n);
  EXPECT_DOUBLE_EQ(d[0], 0.25 * (rank_sum + n));
  EXPECT_DOUBLE_EQ(d[1], 1e10 * n + rank_sum);
}

TEST(CommMpiTest, ReduceScatterGivesRankRTheSumOfShardR) {
  Communicator& world = World();
  const int n = world.world_size(), r = world.rank();
  const int64_t shard = 3;
  // Rank q sends value 100 q + i at position i.
  std::vector<float> send(n * shard), recv(shard, -1.0f);
  for (int64_t i = 0; i < n * shard; ++i) send[i] = 100.0f * r + i;
  world.ReduceScatterSum(send.data(), recv.data(), shard);
  const double rank_sum = n * (n - 1) / 2.0;
  for (int64_t j = 0; j < shard; ++j) {
    EXPECT_FLOAT_EQ(recv[j], 100.0 * rank_sum + n * (r * shard + j)) << j;
  }
}

TEST(CommMpiTest, AllGatherConcatenatesShardsInRankOrder) {
  Communicator& world = World();
  const int n = world.world_size(), r = world.rank();
  const std::vector<float> send = {10.0f * r + 1, 10.0f * r + 2};
  std::vector<float> recv(2 * n, 0.0f);
  world.AllGather(send.data(), recv.data(), 2);
  for (int q = 0; q < n; ++q) {
    EXPECT_EQ(recv[2 * q], 10.0f * q + 1);
    EXPECT_EQ(recv[2 * q + 1], 10.0f * q + 2);
  }
}

TEST(CommMpiTest, BroadcastCopiesTheRootsBytes) {
  Communicator& world = World();
  const int root = world.world_size() - 1;
  int64_t value = world.rank() == root ? 123456789012 : -1;
  world.Broadcast(&value, sizeof(value), root);
  EXPECT_EQ(value, 123456789012);
  const std::string text = BroadcastString(
      world, world.rank() == 0 ? "rank zero's run directory" : "ignored", 0);
  EXPECT_EQ(text, "rank zero's run directory");
}

TEST(CommMpiTest, SplitMakesGroupsOfConsecutiveRanks) {
  Communicator& world = World();
  const int n = world.world_size(), r = world.rank();
  // Groups of one (as --ranks_per_run 1) and one group of everybody.
  std::unique_ptr<Communicator> alone = world.Split(r);
  EXPECT_EQ(alone->world_size(), 1);
  EXPECT_EQ(alone->rank(), 0);
  float x = 1.0f + r;
  alone->AllReduceSum(&x, 1);
  EXPECT_EQ(x, 1.0f + r);  // nobody else's value
  std::unique_ptr<Communicator> all = world.Split(0);
  EXPECT_EQ(all->world_size(), n);
  EXPECT_EQ(all->rank(), r);
  // Halves when there are at least 2 ranks: {0..n/2-1}, {n/2..n-1}.
  const int half = n / 2;
  std::unique_ptr<Communicator> part = world.Split(r < half ? 0 : 1);
  EXPECT_EQ(part->rank(), r < half ? r : r - half);
  EXPECT_EQ(part->world_size(), r < half ? half : n - half);
  double ranks = r;
  part->AllReduceSum(&ranks, 1);
  double expected = 0;
  for (int q = (r < half ? 0 : half); q < (r < half ? half : n); ++q) expected += q;
  EXPECT_EQ(ranks, expected);
}

}  // namespace
}  // namespace sinklab

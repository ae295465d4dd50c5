// The single-process communicator (core/comm.h): a world of one, where every collective is
// the identity or a copy; the shard arithmetic and the launcher detection.
#include "core/comm.h"

#include <cstdlib>
#include <vector>

#include "gtest/gtest.h"

namespace sinklab {
namespace {

TEST(CommTest, ShardSizeRoundsUpSoShardsCoverEveryElement) {
  EXPECT_EQ(ShardSize(10, 1), 10);
  EXPECT_EQ(ShardSize(10, 2), 5);
  EXPECT_EQ(ShardSize(10, 3), 4);  // 3 shards of 4 = 12: the last ends in 2 padding elements
  EXPECT_EQ(ShardSize(10, 4), 3);
  EXPECT_EQ(ShardSize(2, 4), 1);   // ranks 2 and 3 hold only padding
  EXPECT_EQ(ShardSize(0, 4), 0);
}

TEST(CommTest, SingleProcessIsRankZeroOfOne) {
  const std::unique_ptr<Communicator> comm = MakeSingleProcessCommunicator();
  EXPECT_EQ(comm->rank(), 0);
  EXPECT_EQ(comm->world_size(), 1);
  EXPECT_EQ(comm->Describe(), "single process");
}

TEST(CommTest, SingleProcessCollectivesKeepOrCopyTheData) {
  const std::unique_ptr<Communicator> comm = MakeSingleProcessCommunicator();
  std::vector<float> f = {1.5f, -2.0f, 3.25f};
  comm->AllReduceSum(f.data(), 3);
  EXPECT_EQ(f, (std::vector<float>{1.5f, -2.0f, 3.25f}));  // the sum over one rank
  std::vector<double> d = {0.1, 7.0};
  comm->AllReduceSum(d.data(), 2);
  EXPECT_EQ(d, (std::vector<double>{0.1, 7.0}));
  std::vector<float> shard(3, 0.0f);
  comm->ReduceScatterSum(f.data(), shard.data(), 3);  // shard 0 = everything
  EXPECT_EQ(shard, f);
  std::vector<float> gathered(3, 0.0f);
  const std::vector<float> mine = {4.0f, 5.0f, 6.0f};
  comm->AllGather(mine.data(), gathered.data(), 3);
  EXPECT_EQ(gathered, mine);
  int value = 42;
  comm->Broadcast(&value, sizeof(value), 0);
  EXPECT_EQ(value, 42);
  EXPECT_EQ(BroadcastString(*comm, "runs/tiny_3", 0), "runs/tiny_3");
  comm->Barrier();
}

TEST(CommTest, SplitOfASingleProcessIsASingleProcess) {
  const std::unique_ptr<Communicator> comm = MakeSingleProcessCommunicator();
  const std::unique_ptr<Communicator> group = comm->Split(3);
  EXPECT_EQ(group->rank(), 0);
  EXPECT_EQ(group->world_size(), 1);
}

TEST(CommTest, AbortPrintsTheMessageAndExitsWithStatusOne) {
  const std::unique_ptr<Communicator> comm = MakeSingleProcessCommunicator();
  EXPECT_EXIT(comm->Abort("the data shard is missing"), ::testing::ExitedWithCode(1),
              "sinklab: the data shard is missing");
}

TEST(CommTest, LauncherIsDetectedFromItsEnvironment) {
  // ctest does not run this binary under mpirun.
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE"}) {
    ASSERT_EQ(std::getenv(name), nullptr) << name;
  }
  EXPECT_FALSE(StartedByMpiLauncher());
  ::setenv("PMIX_RANK", "0", 1);
  EXPECT_TRUE(StartedByMpiLauncher());
  ::unsetenv("PMIX_RANK");
  EXPECT_FALSE(StartedByMpiLauncher());
}

TEST(CommTest, WithoutALauncherTheWorldIsASingleProcess) {
  int argc = 1;
  char name[] = "comm_test";
  char* args[] = {name, nullptr};
  char** argv = args;
  absl::StatusOr<std::unique_ptr<Communicator>> world = InitWorldCommunicator(&argc, &argv);
  ASSERT_TRUE(world.ok()) << world.status();
  EXPECT_EQ((*world)->world_size(), 1);
  EXPECT_EQ((*world)->Describe(), "single process");
}

}  // namespace
}  // namespace sinklab

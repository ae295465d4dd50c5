// tests/test_dirs.h: a process removes its own test directories and nothing else.
#include "tests/test_dirs.h"

#include <filesystem>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/data/temp_dir.h"

namespace sinklab {
namespace {

TEST(TestDirsTest, RemovesThisProcessesDirectoriesOnly) {
  ScopedTempDir root;
  const int pid = 4242;
  for (const std::string name : {"checkpoint_test_4242_resume", "trainer_test_4242",
                                 "dist_test_4242_muon_nccl", "checkpoint_test_42421_other_pid",
                                 "trainer_test_4243", "unrelated_4242", "checkpoint_test_4242x"}) {
    std::filesystem::create_directories(root.File(name) + "/nested");
    std::ofstream(root.File(name) + "/nested/file") << "x";
  }
  EXPECT_EQ(RemoveTestDirsOf(root.path(), pid), 3);
  for (const std::string gone :
       {"checkpoint_test_4242_resume", "trainer_test_4242", "dist_test_4242_muon_nccl"}) {
    EXPECT_FALSE(std::filesystem::exists(root.File(gone))) << gone;
  }
  for (const std::string kept : {"checkpoint_test_42421_other_pid", "trainer_test_4243",
                                 "unrelated_4242", "checkpoint_test_4242x"}) {
    EXPECT_TRUE(std::filesystem::exists(root.File(kept) + "/nested/file")) << kept;
  }
  EXPECT_EQ(RemoveTestDirsOf(root.File("missing"), pid), 0);
}

}  // namespace
}  // namespace sinklab

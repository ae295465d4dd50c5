// Linked into every single-process test binary (sinklab_test in the top CMakeLists.txt): after
// the last test, the process removes its own test directories (tests/test_dirs.h), unless a
// test failed, when they stay for inspection.
#include <unistd.h>

#include "gtest/gtest.h"
#include "tests/test_dirs.h"

namespace sinklab {
namespace {

class RemoveTestDirsAtExit : public ::testing::Environment {
 public:
  void TearDown() override {
    if (::testing::UnitTest::GetInstance()->Passed()) {
      RemoveTestDirsOf(::testing::TempDir(), ::getpid());
    }
  }
};

const ::testing::Environment* const kRemoveTestDirs =
    ::testing::AddGlobalTestEnvironment(new RemoveTestDirsAtExit);

}  // namespace
}  // namespace sinklab

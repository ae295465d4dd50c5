// A fresh directory for one test under testing::TempDir(), removed when the test ends.
#ifndef SINKLAB_TESTS_DATA_TEMP_DIR_H_
#define SINKLAB_TESTS_DATA_TEMP_DIR_H_

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace sinklab {

class ScopedTempDir {
 public:
  ScopedTempDir() {
    const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = absl::StrCat(::testing::TempDir(), "sinklab_", info->test_suite_name(), "_",
                         info->name(), "_", ::getpid());
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~ScopedTempDir() { std::filesystem::remove_all(path_); }
  ScopedTempDir(const ScopedTempDir&) = delete;
  ScopedTempDir& operator=(const ScopedTempDir&) = delete;

  const std::string& path() const { return path_; }
  // path()/name (the file need not exist).
  std::string File(const std::string& name) const { return absl::StrCat(path_, "/", name); }
  // Writes `content` to path()/name and returns that path.
  std::string WriteFile(const std::string& name, const std::string& content) const {
    const std::string file = File(name);
    std::ofstream(file, std::ios::binary) << content;
    return file;
  }

 private:
  std::string path_;
};

}  // namespace sinklab

#endif  // SINKLAB_TESTS_DATA_TEMP_DIR_H_

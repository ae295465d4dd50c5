#include "tests/test_dirs.h"

#include <filesystem>
#include <system_error>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace sinklab {

int RemoveTestDirsOf(const std::string& root, int pid) {
  static constexpr const char* kPrefixes[] = {
      "checkpoint_test_",   "data_parallel_test_", "dist_test_",   "run_dir_test_",
      "stats_runner_test_", "stats_weights_test_", "trainer_test_"};
  std::error_code error;
  std::filesystem::directory_iterator it(root, error);
  if (error) return 0;
  int removed = 0;
  for (const std::filesystem::directory_entry& entry : it) {
    const std::string name = entry.path().filename().string();
    for (const char* prefix : kPrefixes) {
      const std::string own = absl::StrCat(prefix, pid);
      if (name != own && !absl::StartsWith(name, own + "_")) continue;
      std::filesystem::remove_all(entry.path(), error);
      if (!error) ++removed;
      break;
    }
  }
  return removed;
}

}  // namespace sinklab

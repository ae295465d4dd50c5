// Replays every seed of fuzz/corpus/<target>/ through the fuzz target's entry function (the
// same code the libFuzzer binaries run), so CI catches a parser that crashes on, or stops
// accepting, a seed. Seed names say what to expect: valid_* must be accepted, invalid_*
// refused; anything else (e.g. crash_* inputs that once crashed a parser) must only not crash.
#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <ostream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "core/file_util.h"
#include "fuzz/fuzz_entries.h"
#include "gtest/gtest.h"

namespace sinklab {

// gtest prints a parameter with this (found by ADL) instead of its raw bytes.
void PrintTo(const FuzzTarget& target, std::ostream* os) { *os << target.name; }

namespace {

std::string CorpusRoot() {
  const char* root = std::getenv("SINKLAB_ROOT");
  return std::string(root != nullptr ? root : ".") + "/fuzz/corpus";
}

std::vector<std::filesystem::path> SeedsOf(const std::string& target) {
  std::vector<std::filesystem::path> seeds;
  const std::filesystem::path folder = std::filesystem::path(CorpusRoot()) / target;
  if (!std::filesystem::is_directory(folder)) return seeds;
  for (const auto& entry : std::filesystem::directory_iterator(folder)) {
    if (entry.is_regular_file()) seeds.push_back(entry.path());
  }
  std::sort(seeds.begin(), seeds.end());
  return seeds;
}

class CorpusReplayTest : public ::testing::TestWithParam<FuzzTarget> {};

TEST_P(CorpusReplayTest, EverySeedReplaysWithoutCrashAndValidSeedsAreAccepted) {
  const FuzzTarget target = GetParam();
  const std::vector<std::filesystem::path> seeds = SeedsOf(target.name);
  int valid = 0, invalid = 0;
  for (const std::filesystem::path& seed : seeds) {
    const absl::StatusOr<std::string> bytes = ReadFileToString(seed.string());
    ASSERT_TRUE(bytes.ok()) << bytes.status();
    const absl::Status verdict =
        target.entry(reinterpret_cast<const uint8_t*>(bytes->data()), bytes->size());
    const std::string name = seed.filename().string();
    if (absl::StartsWith(name, "valid_")) {
      ++valid;
      EXPECT_TRUE(verdict.ok()) << seed << ": " << verdict;
    } else if (absl::StartsWith(name, "invalid_")) {
      ++invalid;
      EXPECT_FALSE(verdict.ok()) << seed << " was accepted";
    }
  }
  EXPECT_GE(valid, 2) << CorpusRoot() << "/" << target.name << " needs valid_* seeds";
  // The tokenizer accepts every byte string, so it has no invalid seeds.
  if (std::string(target.name) != "byte_tokenizer") {
    EXPECT_GE(invalid, 2) << CorpusRoot() << "/" << target.name << " needs invalid_* seeds";
  }
}

INSTANTIATE_TEST_SUITE_P(AllTargets, CorpusReplayTest, ::testing::ValuesIn(FuzzTargets()),
                         [](const ::testing::TestParamInfo<FuzzTarget>& info) {
                           return std::string(info.param.name);
                         });

TEST(CorpusReplayTest, EveryCorpusFolderBelongsToATarget) {
  for (const auto& entry : std::filesystem::directory_iterator(CorpusRoot())) {
    bool known = false;
    for (const FuzzTarget& target : FuzzTargets()) {
      known = known || entry.path().filename() == target.name;
    }
    EXPECT_TRUE(known) << entry.path() << " is not replayed by any fuzz target";
  }
}

}  // namespace
}  // namespace sinklab

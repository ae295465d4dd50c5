#include "data/prepare.h"

#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "core/rng.h"
#include "data/byte_tokenizer.h"
#include "data/shard.h"
#include "data/token_source.h"
#include "gtest/gtest.h"
#include "tests/data/temp_dir.h"

namespace sinklab {
namespace {

// Random lowercase documents joined by `separator`.
std::string RandomText(int documents, const std::string& separator, uint64_t seed) {
  Rng rng(seed, 0);
  std::string text;
  for (int d = 0; d < documents; ++d) {
    if (d > 0) text += separator;
    const int length = 1 + static_cast<int>(rng.Below(200));
    for (int i = 0; i < length; ++i) text.push_back(static_cast<char>('a' + rng.Below(26)));
  }
  return text;
}

PrepareOptions Options(const ScopedTempDir& dir, std::vector<std::string> inputs) {
  PrepareOptions options;
  options.inputs = std::move(inputs);
  options.out_dir = dir.File("shards");
  options.prefix = "toy";
  options.shard_tokens = 1000;
  options.doc_separator = "@@";
  options.val_fraction = 0.1;
  return options;
}

TEST(PrepareTest, WritesShardsThatReadBackToTheTokens) {
  ScopedTempDir dir;
  const std::string a = RandomText(20, "@@", 1), b = RandomText(15, "@@", 2);
  PrepareOptions options =
      Options(dir, {dir.WriteFile("a.txt", a), dir.WriteFile("b.txt", b)});
  std::vector<uint32_t> expected;
  const int64_t documents = ByteTokenizer::AppendDocuments(a, "@@", true, &expected) +
                            ByteTokenizer::AppendDocuments(b, "@@", true, &expected);
  EXPECT_EQ(documents, 35);
  const size_t num_val = static_cast<size_t>(0.1 * expected.size());

  for (const bool val_first : {false, true}) {
    options.val_first = val_first;
    options.overwrite = true;
    const absl::StatusOr<PrepareSummary> summary = PrepareShards(options);
    ASSERT_TRUE(summary.ok()) << summary.status();
    EXPECT_EQ(summary->documents, 35);
    EXPECT_EQ(summary->val_tokens, static_cast<int64_t>(num_val));
    EXPECT_EQ(summary->train_tokens + summary->val_tokens, static_cast<int64_t>(expected.size()));
    ASSERT_GE(summary->train_shards.size(), 2u);
    EXPECT_EQ(summary->train_shards[0], dir.File("shards/toy_train_000000.bin"));
    EXPECT_EQ(summary->val_shard, dir.File("shards/toy_val_000000.bin"));
    for (const std::string& shard : summary->train_shards) {
      const absl::StatusOr<ShardHeader> header = ReadShardHeader(shard);
      ASSERT_TRUE(header.ok()) << header.status();
      EXPECT_EQ(header->width, TokenWidth::kUint16);
      EXPECT_LE(header->num_tokens, 1000);
    }
    const absl::StatusOr<std::vector<uint32_t>> train =
        ReadShardGlob(dir.File("shards/toy_train_*.bin"), "train");
    const absl::StatusOr<std::vector<uint32_t>> val = ReadShard(summary->val_shard);
    ASSERT_TRUE(train.ok() && val.ok());
    std::vector<uint32_t> joined = val_first ? *val : *train;
    const std::vector<uint32_t>& rest = val_first ? *train : *val;
    joined.insert(joined.end(), rest.begin(), rest.end());
    EXPECT_EQ(joined, expected) << "val_first=" << val_first;
  }
}

TEST(PrepareTest, RefusesStaleShardsUnlessOverwriteAndThenRemovesThem) {
  ScopedTempDir dir;
  PrepareOptions options = Options(dir, {dir.WriteFile("a.txt", RandomText(5, "@@", 3))});
  options.val_fraction = 0.0;
  ASSERT_TRUE(PrepareShards(options).ok());
  ASSERT_TRUE(WriteShard(dir.File("shards/toy_train_000099.bin"), {1}, TokenWidth::kUint16).ok());
  const absl::Status status = PrepareShards(options).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_TRUE(absl::StrContains(status.message(), "toy_train_000000.bin already exists"))
      << status;
  options.overwrite = true;
  ASSERT_TRUE(PrepareShards(options).ok());
  EXPECT_FALSE(std::filesystem::exists(dir.File("shards/toy_train_000099.bin")));
}

TEST(PrepareTest, MissingInputAndBadOptionsAreNamed) {
  ScopedTempDir dir;
  PrepareOptions options = Options(dir, {dir.File("missing.txt")});
  EXPECT_TRUE(absl::StrContains(PrepareShards(options).status().message(), "missing.txt"));
  options.inputs = {dir.WriteFile("a.txt", "abc")};
  options.val_fraction = 1.0;
  EXPECT_EQ(PrepareShards(options).status().message(),
            "prepare: val_fraction=1 is outside [0, 1)");
  options.val_fraction = 0.0;
  options.shard_tokens = 0;
  EXPECT_TRUE(absl::StrContains(PrepareShards(options).status().message(), "shard_tokens=0"));
}

}  // namespace
}  // namespace sinklab

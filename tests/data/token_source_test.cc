#include "data/token_source.h"

#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "data/byte_tokenizer.h"
#include "data/shard.h"
#include "gtest/gtest.h"
#include "tests/data/temp_dir.h"

namespace sinklab {
namespace {

DataConfig TextConfig(const std::string& path, float val_fraction, int seq_len) {
  DataConfig cfg;
  cfg.set_text_corpus(path);
  cfg.set_val_fraction(val_fraction);
  cfg.set_seq_len(seq_len);
  cfg.set_doc_separator("\n\n\n");
  return cfg;
}

TEST(TokenSourceTest, TextCorpusPutsBosAtDocStartsAndHoldsOutTheLastFraction) {
  ScopedTempDir dir;
  // 3 documents; tokens: BOS "one" BOS "two\nlines" BOS "three" = 4 + 10 + 6 = 20.
  const std::string path = dir.WriteFile("c.txt", "one\n\n\ntwo\nlines\n\n\nthree");
  const absl::StatusOr<TokenSplits> splits = LoadTokens(TextConfig(path, 0.25f, 4));
  ASSERT_TRUE(splits.ok()) << splits.status();
  std::vector<uint32_t> all = splits->train;
  all.insert(all.end(), splits->val.begin(), splits->val.end());
  EXPECT_EQ(ByteTokenizer::Decode(all, "|"), "|one|two\nlines|three");
  EXPECT_EQ(splits->val.size(), 5u);  // floor(0.25 * 20)
  EXPECT_EQ(ByteTokenizer::Decode(splits->val, "|"), "three");
  EXPECT_EQ(splits->train.size(), 15u);
  EXPECT_EQ(splits->val_source, absl::StrCat("the last 25% of ", path));
}

TEST(TokenSourceTest, NoBosWhenDisabledAndNoValWhenFractionIsZero) {
  ScopedTempDir dir;
  DataConfig cfg = TextConfig(dir.WriteFile("c.txt", "ab\n\n\ncd"), 0.0f, 2);
  cfg.set_bos_at_doc_start(false);
  const absl::StatusOr<TokenSplits> splits = LoadTokens(cfg);
  ASSERT_TRUE(splits.ok()) << splits.status();
  EXPECT_EQ(splits->train, (std::vector<uint32_t>{'a', 'b', 'c', 'd'}));
  EXPECT_TRUE(splits->val.empty());
}

TEST(TokenSourceTest, ShardGlobConcatenatesInNameOrderAndValShardsWin) {
  ScopedTempDir dir;
  ASSERT_TRUE(WriteShard(dir.File("t_000001.bin"), {3, 4}, TokenWidth::kUint16).ok());
  ASSERT_TRUE(WriteShard(dir.File("t_000000.bin"), {1, 2}, TokenWidth::kUint32).ok());
  ASSERT_TRUE(WriteShard(dir.File("t_000002.bin"), {5, 70000}, TokenWidth::kUint32).ok());
  ASSERT_TRUE(WriteShard(dir.File("v_000000.bin"), {9, 8, 7}, TokenWidth::kUint16).ok());
  DataConfig cfg;
  cfg.set_train_shards(dir.File("t_*.bin"));
  cfg.set_val_shards(dir.File("v_*.bin"));
  cfg.set_seq_len(2);
  cfg.set_val_fraction(0.5f);  // ignored: val shards are given
  const absl::StatusOr<TokenSplits> splits = LoadTokens(cfg);
  ASSERT_TRUE(splits.ok()) << splits.status();
  EXPECT_EQ(splits->train, (std::vector<uint32_t>{1, 2, 3, 4, 5, 70000}));
  EXPECT_EQ(splits->val, (std::vector<uint32_t>{9, 8, 7}));
}

TEST(TokenSourceTest, ShardsWithoutValShardsHoldOutTheLastFraction) {
  ScopedTempDir dir;
  ASSERT_TRUE(WriteShard(dir.File("t.bin"), {0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, TokenWidth::kUint16)
                  .ok());
  DataConfig cfg;
  cfg.set_train_shards(dir.File("t.bin"));
  cfg.set_seq_len(2);
  cfg.set_val_fraction(0.3f);
  const absl::StatusOr<TokenSplits> splits = LoadTokens(cfg);
  ASSERT_TRUE(splits.ok()) << splits.status();
  EXPECT_EQ(splits->train, (std::vector<uint32_t>{0, 1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(splits->val, (std::vector<uint32_t>{7, 8, 9}));
}

TEST(TokenSourceTest, GlobWithNoMatchNamesFieldAndPattern) {
  DataConfig cfg;
  cfg.set_train_shards("/nonexistent_dir/train_*.bin");
  const absl::Status status = LoadTokens(cfg).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(status.message(),
            "data.train_shards: pattern \"/nonexistent_dir/train_*.bin\" matches no file");
}

TEST(TokenSourceTest, BadShardInGlobNamesTheShard) {
  ScopedTempDir dir;
  ASSERT_TRUE(WriteShard(dir.File("t_0.bin"), {1, 2, 3}, TokenWidth::kUint16).ok());
  const std::string bad = dir.WriteFile("t_1.bin", std::string(1030, 'x'));
  DataConfig cfg;
  cfg.set_train_shards(dir.File("t_*.bin"));
  const absl::Status status = LoadTokens(cfg).status();
  EXPECT_TRUE(absl::StartsWith(status.message(), absl::StrCat("data.train_shards: ", bad,
                                                              ": bad magic")))
      << status.message();
}

TEST(TokenSourceTest, RefusesValFractionOutsideRangeNamingTheField) {
  DataConfig cfg;
  cfg.set_val_fraction(0.75f);
  const absl::Status status = LoadTokens(cfg).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), "data.val_fraction: 0.75 is outside [0, 0.5]");
}

TEST(TokenSourceTest, RefusesSplitsShorterThanOneSequence) {
  ScopedTempDir dir;
  const std::string path = dir.WriteFile("c.txt", std::string(100, 'a'));
  const absl::Status train_short = LoadTokens(TextConfig(path, 0.0f, 200)).status();
  EXPECT_TRUE(absl::StrContains(train_short.message(), "the train split")) << train_short;
  EXPECT_TRUE(absl::StrContains(train_short.message(), "has 101 tokens, fewer than "
                                                       "data.seq_len + 1 = 201"))
      << train_short;
  const absl::Status val_short = LoadTokens(TextConfig(path, 0.05f, 20)).status();
  EXPECT_TRUE(absl::StrContains(val_short.message(), "the val split (the last 5% of")) << val_short;
}

TEST(TokenSourceTest, MissingTextCorpusNamesFieldAndFile) {
  const absl::Status status = LoadTokens(TextConfig("no/such.txt", 0.1f, 4)).status();
  EXPECT_TRUE(absl::StartsWith(status.message(), "data.text_corpus: no/such.txt: cannot open"))
      << status;
}

}  // namespace
}  // namespace sinklab

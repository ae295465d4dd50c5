#include "data/shard.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/file_util.h"
#include "core/rng.h"
#include "core/status.h"
#include "gtest/gtest.h"
#include "tests/data/temp_dir.h"

namespace sinklab {
namespace {

std::vector<uint32_t> RandomTokens(int n, uint32_t below, uint64_t seed) {
  Rng rng(seed, 0);
  std::vector<uint32_t> tokens(n);
  for (uint32_t& t : tokens) t = static_cast<uint32_t>(rng.Below(below));
  return tokens;
}

std::string Bytes(std::initializer_list<int> values) {
  std::string bytes;
  for (int v : values) bytes.push_back(static_cast<char>(v));
  return bytes;
}

TEST(ShardTest, RoundTripsUint16AndUint32Tokens) {
  ScopedTempDir dir;
  const std::vector<uint32_t> narrow = RandomTokens(5000, 65536, 1);
  const std::vector<uint32_t> wide = RandomTokens(3000, 0xFFFFFFFFu, 2);
  ASSERT_TRUE(WriteShard(dir.File("a.bin"), narrow, TokenWidth::kUint16).ok());
  ASSERT_TRUE(WriteShard(dir.File("b.bin"), wide, TokenWidth::kUint32).ok());
  EXPECT_EQ(std::filesystem::file_size(dir.File("a.bin")), 1024u + 5000 * 2);
  EXPECT_EQ(std::filesystem::file_size(dir.File("b.bin")), 1024u + 3000 * 4);
  EXPECT_EQ(*ReadShard(dir.File("a.bin")), narrow);
  EXPECT_EQ(*ReadShard(dir.File("b.bin")), wide);
  const absl::StatusOr<ShardHeader> header = ReadShardHeader(dir.File("b.bin"));
  ASSERT_TRUE(header.ok());
  EXPECT_EQ(header->width, TokenWidth::kUint32);
  EXPECT_EQ(header->num_tokens, 3000);
  EXPECT_FALSE(std::filesystem::exists(dir.File("a.bin.tmp")));
}

TEST(ShardTest, EmptyShardRoundTrips) {
  ScopedTempDir dir;
  ASSERT_TRUE(WriteShard(dir.File("e.bin"), {}, TokenWidth::kUint16).ok());
  EXPECT_TRUE(ReadShard(dir.File("e.bin"))->empty());
}

// Byte layout worked by hand (Python: struct.pack('<3i', 20240520, 1, 3), '<3H' 1, 258, 65535).
TEST(ShardTest, WritesLlmCLayoutByteForByte) {
  ScopedTempDir dir;
  ASSERT_TRUE(WriteShard(dir.File("x.bin"), {1, 258, 65535}, TokenWidth::kUint16).ok());
  const std::string narrow = *ReadFileToString(dir.File("x.bin"));
  ASSERT_EQ(narrow.size(), 1030u);
  EXPECT_EQ(narrow.substr(0, 12), Bytes({136, 216, 52, 1, 1, 0, 0, 0, 3, 0, 0, 0}));
  EXPECT_EQ(narrow.substr(12, 1012), std::string(1012, '\0'));
  EXPECT_EQ(narrow.substr(1024), Bytes({1, 0, 2, 1, 255, 255}));

  ASSERT_TRUE(WriteShard(dir.File("y.bin"), {70000, 4294967295u}, TokenWidth::kUint32).ok());
  const std::string wide = *ReadFileToString(dir.File("y.bin"));
  ASSERT_EQ(wide.size(), 1032u);
  EXPECT_EQ(wide.substr(0, 12), Bytes({161, 217, 52, 1, 7, 0, 0, 0, 2, 0, 0, 0}));
  EXPECT_EQ(wide.substr(1024), Bytes({112, 17, 1, 0, 255, 255, 255, 255}));
}

// Writes a valid 10-token uint16 shard, then overwrites bytes [offset, offset + 4) with `value`.
std::string ShardWithInt32At(const ScopedTempDir& dir, int offset, int value) {
  const std::string path = dir.File("bad.bin");
  SL_CHECK_OK(WriteShard(path, RandomTokens(10, 256, 3), TokenWidth::kUint16));
  std::string bytes = *ReadFileToString(path);
  for (int b = 0; b < 4; ++b) bytes[offset + b] = static_cast<char>((value >> (8 * b)) & 0xFF);
  return dir.WriteFile("bad.bin", bytes);
}

TEST(ShardTest, RefusesBadMagicNamingFileAndBothMagics) {
  ScopedTempDir dir;
  const std::string path = ShardWithInt32At(dir, 0, 12345);
  const absl::StatusOr<std::vector<uint32_t>> read = ReadShard(path);
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().message(),
            path + ": bad magic 12345 at byte 0 (expected 20240520 for uint16 or 20240801 "
                   "for uint32 shards)");
}

TEST(ShardTest, RefusesBadVersionNamingFileAndExpectedVersion) {
  ScopedTempDir dir;
  const std::string path = ShardWithInt32At(dir, 4, 7);  // uint32's version in a uint16 shard
  const absl::Status status = ReadShard(path).status();
  EXPECT_EQ(status.message(), path + ": bad version 7 at byte 4 for magic 20240520 (expected 1 "
                                     "for uint16 shards)");
}

TEST(ShardTest, RefusesNegativeTokenCount) {
  ScopedTempDir dir;
  const std::string path = ShardWithInt32At(dir, 8, -5);
  EXPECT_EQ(ReadShard(path).status().message(),
            path + ": negative token count -5 at byte 8");
}

// The message ReadShard gives for a 1000-token uint16 shard cut to `cut` bytes.
std::string TruncationMessage(size_t cut) {
  return cut < 1024 ? absl::StrCat("the file is ", cut,
                                   " bytes, shorter than the 1024-byte shard header (truncated?)")
                    : absl::StrCat("header says 1000 tokens (uint16) so the file should be "
                                   "3024 bytes, but it is ",
                                   cut, " bytes (truncated?)");
}

TEST(ShardTest, RefusesTruncatedShardAtEveryCut) {
  ScopedTempDir dir;
  const std::string good = dir.File("good.bin");
  ASSERT_TRUE(WriteShard(good, RandomTokens(1000, 65536, 4), TokenWidth::kUint16).ok());
  const std::string bytes = *ReadFileToString(good);
  ASSERT_EQ(bytes.size(), 3024u);
  const auto* data = reinterpret_cast<const uint8_t*>(bytes.data());
  for (size_t cut = 0; cut < bytes.size(); ++cut) {
    ShardHeader header;
    const absl::Status status =
        ParseShardHeader(data, std::min<size_t>(cut, kShardHeaderBytes), cut, &header);
    ASSERT_EQ(status.code(), absl::StatusCode::kDataLoss) << "cut at " << cut;
    ASSERT_EQ(status.message(), TruncationMessage(cut));
  }
}

TEST(ShardTest, ReadShardNamesTheTruncatedFile) {
  ScopedTempDir dir;
  const std::string good = dir.File("good.bin");
  ASSERT_TRUE(WriteShard(good, RandomTokens(1000, 65536, 4), TokenWidth::kUint16).ok());
  const std::string bytes = *ReadFileToString(good);
  const std::string path = dir.File("cut.bin");
  for (size_t cut : {0, 1, 3, 4, 8, 11, 12, 500, 1023, 1024, 1025, 1026, 2000, 3022, 3023}) {
    dir.WriteFile("cut.bin", bytes.substr(0, cut));
    const absl::Status status = ReadShard(path).status();
    EXPECT_EQ(status.message(), absl::StrCat(path, ": ", TruncationMessage(cut)));
  }
}

TEST(ShardTest, RefusesTooLongShardNamingIt) {
  ScopedTempDir dir;
  const std::string path = dir.File("long.bin");
  ASSERT_TRUE(WriteShard(path, RandomTokens(10, 1u << 30, 5), TokenWidth::kUint32).ok());
  dir.WriteFile("long.bin", *ReadFileToString(path) + "xy");
  EXPECT_EQ(ReadShard(path).status().message(),
            path + ": header says 10 tokens (uint32) so the file should be 1064 bytes, but it "
                   "is 1066 bytes (too long: trailing bytes?)");
}

TEST(ShardTest, RefusesUint16OverflowOnWriteNamingTokenAndLeavingNoFile) {
  ScopedTempDir dir;
  std::vector<uint32_t> tokens = RandomTokens(100, 65536, 6);
  tokens[42] = 65536;
  const std::string path = dir.File("o.bin");
  const absl::Status status = WriteShard(path, tokens, TokenWidth::kUint16);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), path + ": token 65536 at index 42 does not fit a uint16 shard "
                                     "(max 65535); write a uint32 shard");
  EXPECT_FALSE(std::filesystem::exists(path));
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  EXPECT_TRUE(WriteShard(path, tokens, TokenWidth::kUint32).ok());
}

TEST(ShardTest, MissingFileIsNotFoundNamingIt) {
  const absl::Status status = ReadShard("no/such/shard.bin").status();
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(absl::StartsWith(status.message(), "no/such/shard.bin: cannot open"))
      << status.message();
}

TEST(ShardTest, ParseShardHeaderRefusesTooFewBytesOfALargeFile) {
  const std::vector<uint8_t> bytes(100, 0);
  ShardHeader header;
  EXPECT_FALSE(ParseShardHeader(bytes.data(), bytes.size(), 5000, &header).ok());
}

// Random headers: either an error, or a header consistent with the file size (fuzz smoke).
TEST(ShardTest, ParseShardHeaderAcceptsOnlyConsistentRandomHeaders) {
  Rng rng(7, 0);
  int accepted = 0;
  std::vector<uint8_t> bytes(kShardHeaderBytes);
  for (int trial = 0; trial < 2000; ++trial) {
    for (uint8_t& b : bytes) b = static_cast<uint8_t>(rng.Below(256));
    const int32_t magic = trial % 2 ? kShardMagicUint16 : kShardMagicUint32;
    const int32_t version = trial % 2 ? kShardVersionUint16 : kShardVersionUint32;
    const int32_t count = static_cast<int32_t>(rng.Below(50));
    const int32_t fields[3] = {magic, trial % 3 ? version : 2, count};
    if (trial % 5) std::memcpy(bytes.data(), fields, sizeof(fields));  // little-endian host
    const uint64_t file_size = trial % 4 ? 1024 + count * (trial % 2 ? 2 : 4) : rng.Below(2000);
    ShardHeader header;
    if (ParseShardHeader(bytes.data(), bytes.size(), file_size, &header).ok()) {
      ++accepted;
      EXPECT_EQ(file_size, 1024 + header.num_tokens * TokenBytes(header.width));
    }
  }
  EXPECT_GT(accepted, 500);
}

}  // namespace
}  // namespace sinklab

#include "core/tfrecord.h"

#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/crc32c.h"
#include "gtest/gtest.h"

namespace sinklab {
namespace {

std::string Bytes(std::initializer_list<int> values) {
  std::string bytes;
  for (const int v : values) bytes.push_back(static_cast<char>(v));
  return bytes;
}

std::vector<std::string> RandomRecords(std::mt19937* rng, int count) {
  std::vector<std::string> records;
  for (int i = 0; i < count; ++i) {
    std::string data(rng->operator()() % 40, '\0');
    for (char& c : data) c = static_cast<char>(rng->operator()() & 0xFF);
    records.push_back(data);
  }
  return records;
}

TEST(TfRecordTest, EmptyRecordHasHandWorkedBytes) {
  // length 0; masked CRC-32C of 8 zero bytes (0x8C28B28A -> 0x07980329); masked CRC of no
  // bytes (0 -> 0xA282EAD8); both little-endian.
  std::string out;
  AppendTfRecord("", &out);
  EXPECT_EQ(out, Bytes({0, 0, 0, 0, 0, 0, 0, 0, 0x29, 0x03, 0x98, 0x07, 0xD8, 0xEA, 0x82, 0xA2}));
}

TEST(TfRecordTest, RoundTripsRandomRecords) {
  std::mt19937 rng(3);
  const std::vector<std::string> records = RandomRecords(&rng, 200);
  std::string file;
  size_t data_bytes = 0;
  for (const std::string& record : records) {
    AppendTfRecord(record, &file);
    data_bytes += record.size();
  }
  EXPECT_EQ(file.size(), data_bytes + records.size() * kTfRecordOverheadBytes);
  const absl::StatusOr<std::vector<std::string>> parsed = ParseTfRecords(file, "mem");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(*parsed, records);
  EXPECT_TRUE(ParseTfRecords("", "empty")->empty());
}

TEST(TfRecordTest, RefusesEveryTruncationInsideARecordNamingTheOffset) {
  std::mt19937 rng(5);
  const std::vector<std::string> records = RandomRecords(&rng, 6);
  std::string file;
  std::set<size_t> boundaries = {0};
  for (const std::string& record : records) {
    AppendTfRecord(record, &file);
    boundaries.insert(file.size());
  }
  size_t record_start = 0;
  size_t whole_records = 0;
  for (size_t cut = 0; cut < file.size(); ++cut) {
    if (boundaries.count(cut)) {
      record_start = cut;
      whole_records = std::distance(boundaries.begin(), boundaries.find(cut));
    }
    const absl::StatusOr<std::vector<std::string>> parsed =
        ParseTfRecords(file.substr(0, cut), "runs/x/events");
    if (boundaries.count(cut)) {
      // A cut between records leaves a valid, shorter file: the records before it.
      ASSERT_TRUE(parsed.ok()) << cut << ": " << parsed.status();
      EXPECT_EQ(parsed->size(), whole_records);
      continue;
    }
    ASSERT_FALSE(parsed.ok()) << "cut at " << cut;
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kDataLoss);
    EXPECT_NE(parsed.status().message().find(absl::StrCat("runs/x/events: record ", whole_records,
                                                          " at byte ", record_start, ":")),
              std::string::npos)
        << parsed.status();
  }
}

TEST(TfRecordTest, RefusesEveryFlippedByteNamingTheRecordOffset) {
  std::mt19937 rng(9);
  const std::vector<std::string> records = RandomRecords(&rng, 4);
  std::string file;
  std::vector<size_t> starts;
  for (const std::string& record : records) {
    starts.push_back(file.size());
    AppendTfRecord(record, &file);
  }
  size_t record = 0;
  for (size_t at = 0; at < file.size(); ++at) {
    while (record + 1 < starts.size() && at >= starts[record + 1]) ++record;
    std::string corrupt = file;
    corrupt[at] = static_cast<char>(corrupt[at] ^ (1 + rng() % 255));
    const absl::StatusOr<std::vector<std::string>> parsed = ParseTfRecords(corrupt, "f.tfrecord");
    ASSERT_FALSE(parsed.ok()) << "flip at " << at;
    EXPECT_NE(parsed.status().message().find(
                  absl::StrCat("f.tfrecord: record ", record, " at byte ", starts[record], ":")),
              std::string::npos)
        << parsed.status();
  }
}

TEST(TfRecordTest, HugeLengthWithValidHeaderCrcIsRefusedWithoutAllocating) {
  // Length 2^64 - 1 with a correct length CRC: only the size check can refuse it, and it must
  // do so before reading or allocating that many bytes (ASan would catch either).
  const std::string length(8, '\xFF');
  const uint32_t masked = MaskCrc32c(Crc32c(length.data(), length.size()));
  std::string forged = length;
  for (int b = 0; b < 4; ++b) forged.push_back(static_cast<char>((masked >> (8 * b)) & 0xFF));
  forged += "some data and a crc";
  const absl::StatusOr<std::vector<std::string>> parsed = ParseTfRecords(forged, "forged");
  ASSERT_FALSE(parsed.ok());
  EXPECT_NE(parsed.status().message().find("forged: record 0 at byte 0: record of "
                                           "18446744073709551615 data bytes"),
            std::string::npos)
      << parsed.status();
}

TEST(TfRecordTest, ReadTfRecordsNamesAMissingFile) {
  const absl::StatusOr<std::vector<std::string>> parsed = ReadTfRecords("/nonexistent/events");
  ASSERT_FALSE(parsed.ok());
  EXPECT_NE(parsed.status().message().find("/nonexistent/events"), std::string::npos);
}

}  // namespace
}  // namespace sinklab

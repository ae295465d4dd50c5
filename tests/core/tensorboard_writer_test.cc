#include "core/tensorboard_writer.h"

#include <unistd.h>

#include <climits>
#include <filesystem>
#include <fstream>
#include <random>
#include <regex>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "core/file_util.h"
#include "core/tfrecord.h"
#include "gtest/gtest.h"
#include "tests/data/temp_dir.h"

namespace sinklab {
namespace {

// The only regular files in `dir`.
std::vector<std::string> FilesIn(const std::string& dir) {
  std::vector<std::string> files;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.is_regular_file()) files.push_back(entry.path().string());
  }
  return files;
}

TEST(TensorBoardWriterTest, FileNameIsEventsOutTfeventsSecondsHostname) {
  ScopedTempDir dir;
  const int64_t before = absl::ToUnixSeconds(absl::Now());
  absl::StatusOr<std::unique_ptr<TensorBoardWriter>> writer =
      TensorBoardWriter::Open(dir.File("run"));
  ASSERT_TRUE(writer.ok()) << writer.status();
  const int64_t after = absl::ToUnixSeconds(absl::Now());
  char host[HOST_NAME_MAX + 1] = {};
  ASSERT_EQ(::gethostname(host, sizeof(host) - 1), 0);

  const std::string name = std::filesystem::path((*writer)->path()).filename().string();
  std::smatch match;
  ASSERT_TRUE(std::regex_match(name, match, std::regex(R"(events\.out\.tfevents\.(\d+)\.(.+))")))
      << name;
  const int64_t seconds = std::stoll(match[1].str());
  EXPECT_GE(seconds, before);
  EXPECT_LE(seconds, after);
  EXPECT_EQ(match[2].str(), host);
  EXPECT_EQ(name, EventFileName(seconds, host));
  EXPECT_EQ(FilesIn(dir.File("run")), std::vector<std::string>{(*writer)->path()});
}

TEST(TensorBoardWriterTest, FirstRecordIsTheFileVersionEvent) {
  ScopedTempDir dir;
  absl::StatusOr<std::unique_ptr<TensorBoardWriter>> writer = TensorBoardWriter::Open(dir.path());
  ASSERT_TRUE(writer.ok()) << writer.status();
  const std::string path = (*writer)->path();
  // Open flushes the version event: a reader sees it before any scalar is written.
  absl::StatusOr<std::vector<tb::Event>> events = ReadEventFile(path);
  ASSERT_TRUE(events.ok()) << events.status();
  ASSERT_EQ(events->size(), 1u);
  EXPECT_EQ((*events)[0].file_version(), "brain.Event:2");
  EXPECT_EQ((*events)[0].what_case(), tb::Event::kFileVersion);
  EXPECT_NEAR((*events)[0].wall_time(), WallTimeNow(), 60.0);
}

TEST(TensorBoardWriterTest, RoundTripsManyScalars) {
  ScopedTempDir dir;
  std::mt19937 rng(42);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  struct Point {
    std::string tag;
    int64_t step;
    float value;
    double wall_time;
  };
  std::vector<Point> points;
  for (int i = 0; i < 500; ++i) {
    points.push_back({absl::StrCat(i % 3 == 0 ? "train/loss" : "sink/layer_", i % 7),
                      int64_t{i} * 10, normal(rng), 1.7e9 + 0.25 * i});
  }
  std::string path;
  {
    absl::StatusOr<std::unique_ptr<TensorBoardWriter>> writer = TensorBoardWriter::Open(dir.path());
    ASSERT_TRUE(writer.ok()) << writer.status();
    path = (*writer)->path();
    for (const Point& p : points) {
      ASSERT_TRUE((*writer)->AddScalar(p.tag, p.step, p.value, p.wall_time).ok());
    }
    ASSERT_TRUE((*writer)->AddScalars(7, {{"a", 1.5f}, {"b", -2.0f}}, 12.0).ok());
    ASSERT_TRUE((*writer)->Flush().ok());
  }  // the destructor closes the file
  absl::StatusOr<std::vector<tb::Event>> events = ReadEventFile(path);
  ASSERT_TRUE(events.ok()) << events.status();
  ASSERT_EQ(events->size(), points.size() + 2);
  for (size_t i = 0; i < points.size(); ++i) {
    const tb::Event& event = (*events)[i + 1];
    ASSERT_EQ(event.summary().value_size(), 1);
    EXPECT_EQ(event.step(), points[i].step);
    EXPECT_EQ(event.wall_time(), points[i].wall_time);
    EXPECT_EQ(event.summary().value(0).tag(), points[i].tag);
    EXPECT_EQ(event.summary().value(0).simple_value(), points[i].value);  // exact: float stored
  }
  const tb::Event& last = events->back();
  EXPECT_EQ(last.step(), 7);
  ASSERT_EQ(last.summary().value_size(), 2);
  EXPECT_EQ(last.summary().value(1).tag(), "b");
  EXPECT_EQ(last.summary().value(1).simple_value(), -2.0f);
}

TEST(TensorBoardWriterTest, ReaderRefusesTruncatedAndCorruptEventFilesNamingFileAndOffset) {
  ScopedTempDir dir;
  std::string path;
  {
    absl::StatusOr<std::unique_ptr<TensorBoardWriter>> writer = TensorBoardWriter::Open(dir.path());
    ASSERT_TRUE(writer.ok()) << writer.status();
    path = (*writer)->path();
    for (int step = 0; step < 3; ++step)
      ASSERT_TRUE((*writer)->AddScalar("loss", step, 1.0f / (step + 1), 1.0).ok());
  }
  const std::string bytes = *ReadFileToString(path);
  const std::vector<std::string> records = *ParseTfRecords(bytes, path);
  std::vector<size_t> boundaries = {0};
  for (const std::string& record : records) {
    boundaries.push_back(boundaries.back() + record.size() + kTfRecordOverheadBytes);
  }
  const std::string cut_path = dir.File("cut.tfevents");
  for (size_t cut = 1; cut < bytes.size(); ++cut) {
    std::ofstream(cut_path, std::ios::binary | std::ios::trunc) << bytes.substr(0, cut);
    const absl::StatusOr<std::vector<tb::Event>> events = ReadEventFile(cut_path);
    size_t record = 0;
    while (boundaries[record + 1] <= cut) ++record;
    if (boundaries[record] == cut) {
      ASSERT_TRUE(events.ok()) << events.status();
      EXPECT_EQ(events->size(), record);
      continue;
    }
    ASSERT_FALSE(events.ok()) << "cut at " << cut;
    EXPECT_NE(events.status().message().find(
                  absl::StrCat(cut_path, ": record ", record, " at byte ", boundaries[record])),
              std::string::npos)
        << events.status();
  }
  std::string corrupt = bytes;
  const size_t flip = boundaries[2] + 20;  // inside the second scalar event's data
  corrupt[flip] = static_cast<char>(corrupt[flip] ^ 0x40);
  std::ofstream(cut_path, std::ios::binary | std::ios::trunc) << corrupt;
  const absl::StatusOr<std::vector<tb::Event>> events = ReadEventFile(cut_path);
  ASSERT_FALSE(events.ok());
  EXPECT_NE(events.status().message().find(absl::StrCat(cut_path, ": record 2 at byte ",
                                                        boundaries[2], ": data CRC mismatch")),
            std::string::npos)
      << events.status();
}

TEST(TensorBoardWriterTest, ReaderRefusesRecordsThatAreNotEvents) {
  ScopedTempDir dir;
  std::string framed;
  AppendTfRecord("\xFF\xFF\xFF", &framed);  // valid framing, invalid protobuf
  const std::string path = dir.WriteFile("bad.tfevents", framed);
  const absl::StatusOr<std::vector<tb::Event>> events = ReadEventFile(path);
  ASSERT_FALSE(events.ok());
  EXPECT_NE(events.status().message().find(absl::StrCat(path, ": record 0")), std::string::npos)
      << events.status();
}

TEST(TensorBoardWriterTest, TwoWritersInOneDirectoryNeverShareAFile) {
  ScopedTempDir dir;
  absl::StatusOr<std::unique_ptr<TensorBoardWriter>> first = TensorBoardWriter::Open(dir.path());
  absl::StatusOr<std::unique_ptr<TensorBoardWriter>> second = TensorBoardWriter::Open(dir.path());
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_NE((*first)->path(), (*second)->path());
  EXPECT_EQ(FilesIn(dir.path()).size(), 2u);
}

TEST(TensorBoardWriterTest, WritesAfterCloseFailAndOpenErrorsNameThePath) {
  ScopedTempDir dir;
  absl::StatusOr<std::unique_ptr<TensorBoardWriter>> writer = TensorBoardWriter::Open(dir.path());
  ASSERT_TRUE(writer.ok());
  ASSERT_TRUE((*writer)->Close().ok());
  const absl::Status status = (*writer)->AddScalar("x", 0, 1.0f, 0.0);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(status.message().find((*writer)->path()), std::string::npos);

  const std::string blocker = dir.WriteFile("not_a_dir", "x");  // a file where a dir should be
  const absl::StatusOr<std::unique_ptr<TensorBoardWriter>> bad =
      TensorBoardWriter::Open(blocker + "/run");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find(blocker), std::string::npos) << bad.status();
}

}  // namespace
}  // namespace sinklab

#include "core/metrics_jsonl.h"

#include <cmath>
#include <fstream>
#include <sstream>

#include "gtest/gtest.h"

namespace sinklab {
namespace {

TEST(JsonRecordTest, KeepsOrderEscapesAndWritesNullForNonFinite) {
  JsonRecord record;
  record.Add("step", int64_t{7}).Add("loss", 2.5).AddString("note", "a\"b\n").Add("bad", NAN);
  EXPECT_EQ(record.ToJson(), "{\"step\": 7, \"loss\": 2.5, \"note\": \"a\\\"b\\n\", \"bad\": null}");
}

TEST(JsonlWriterTest, AppendsOneLinePerRecord) {
  const std::string path = ::testing::TempDir() + "/metrics_test.jsonl";
  std::remove(path.c_str());
  {
    JsonlWriter writer;
    ASSERT_TRUE(writer.Open(path).ok());
    ASSERT_TRUE(writer.Append(JsonRecord().Add("step", int64_t{0})).ok());
    ASSERT_TRUE(writer.Append(JsonRecord().Add("step", int64_t{1})).ok());
  }
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_EQ(text.str(), "{\"step\": 0}\n{\"step\": 1}\n");
}

TEST(JsonlWriterTest, UnwritablePathNamesTheFile) {
  JsonlWriter writer;
  const absl::Status status = writer.Open("/nonexistent-dir/metrics.jsonl");
  EXPECT_FALSE(status.ok());
  EXPECT_NE(status.message().find("/nonexistent-dir/metrics.jsonl"), std::string::npos);
}

}  // namespace
}  // namespace sinklab

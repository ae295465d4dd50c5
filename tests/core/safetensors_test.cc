#include "core/safetensors.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "core/file_util.h"
#include "core/json_min.h"
#include "core/rng.h"
#include "core/status.h"
#include "gtest/gtest.h"

namespace sinklab {
namespace {

std::string TempPath(const std::string& name) {
  return absl::StrCat(::testing::TempDir(), "/safetensors_test_", getpid(), "_", name);
}

bool Exists(const std::string& path) {
  struct stat info;
  return ::stat(path.c_str(), &info) == 0;
}

std::string LittleEndian64(uint64_t value) {
  std::string bytes;
  for (int i = 0; i < 8; ++i) bytes.push_back(static_cast<char>((value >> (8 * i)) & 0xFF));
  return bytes;
}

// A file whose header is exactly `header` (no padding added) followed by `data_size` zero bytes.
std::string FileWithHeader(const std::string& header, size_t data_size) {
  return LittleEndian64(header.size()) + header + std::string(data_size, '\0');
}

// Expects an error whose message holds every one of `parts`.
void ExpectErrorWith(const absl::Status& status, std::initializer_list<absl::string_view> parts) {
  ASSERT_FALSE(status.ok()) << "expected an error holding " << *parts.begin();
  for (const absl::string_view part : parts) {
    EXPECT_NE(status.message().find(part), absl::string_view::npos)
        << "message: " << status.message() << "\nmissing: " << part;
  }
}

std::vector<float> NormalFloats(uint64_t stream, size_t n) {
  std::vector<float> values(n);
  for (size_t i = 0; i < n; ++i) values[i] = NormalAt(/*seed=*/42, stream, i);
  return values;
}

TEST(SafetensorsTest, RoundTripsEveryDTypeScalarZeroSizeTensorAndMetadata) {
  const std::vector<float> f32 = NormalFloats(1, 6);
  std::vector<BF16> bf16;
  for (const float x : NormalFloats(2, 5)) bf16.push_back(FloatToBF16(x));
  const std::vector<int32_t> i32 = {-7, 0, 2147483647};
  const std::vector<uint16_t> u16 = {0, 1, 50256, 65535};
  const std::vector<uint32_t> u32 = {128000, 4294967295u};
  const float scalar = 3.5f;
  const std::vector<SafetensorsEntry> tensors = {
      {"layers.0.attn.w_q", DType::kF32, {2, 3}, f32.data(), 24},
      {"embed", DType::kBF16, {5}, bf16.data(), 10},
      {"ids", DType::kI32, {3, 1}, i32.data(), 12},
      {"tokens", DType::kU16, {2, 2}, u16.data(), 8},
      {"big_tokens", DType::kU32, {2}, u32.data(), 8},
      {"step_scale", DType::kF32, {}, &scalar, 4},
      {"empty", DType::kF32, {0, 4}, nullptr, 0},
  };
  const std::map<std::string, std::string> metadata = {
      {"config", "model {\n  name: \"tiny\"\t# caf\xc3\xa9 \\ \x01\n}"}, {"step", "12"}};
  const std::string path = TempPath("round_trip.safetensors");
  ASSERT_TRUE(WriteSafetensors(path, tensors, metadata).ok());

  const absl::StatusOr<SafetensorsFile> file = SafetensorsFile::Read(path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->metadata(), metadata);
  std::vector<std::string> expected_names;
  for (const SafetensorsEntry& t : tensors) expected_names.push_back(t.name);
  EXPECT_EQ(file->names(), expected_names);  // data-offset order = the order written
  for (const SafetensorsEntry& t : tensors) {
    const absl::StatusOr<SafetensorsEntry> got = file->Get(t.name);
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(got->name, t.name);
    EXPECT_EQ(got->dtype, t.dtype) << t.name;
    EXPECT_EQ(got->shape, t.shape) << t.name;
    ASSERT_EQ(got->nbytes, t.nbytes) << t.name;
    if (t.nbytes > 0) {
      EXPECT_EQ(std::memcmp(got->data, t.data, t.nbytes), 0) << t.name;
    }
  }
  // The header is padded to a multiple of 8, so the first tensor can be read in place.
  EXPECT_EQ(reinterpret_cast<uintptr_t>(file->Get(tensors[0].name)->data) % 8, 0u);
  std::remove(path.c_str());
}

TEST(SafetensorsTest, WritesTheExactBytesOfAHandWorkedFile) {
  const float values[2] = {1.0f, -2.0f};
  const std::string path = TempPath("exact.safetensors");
  ASSERT_TRUE(WriteSafetensors(path, {{"w", DType::kF32, {2}, values, 8}}, {{"k", "v"}}).ok());
  // 79 bytes of JSON + 1 space of padding = 80 = 0x50; 1.0f = 0x3f800000, -2.0f = 0xc0000000.
  const std::string expected =
      std::string("\x50\0\0\0\0\0\0\0", 8) +
      "{\"__metadata__\":{\"k\":\"v\"},\"w\":{\"dtype\":\"F32\",\"shape\":[2],"
      "\"data_offsets\":[0,8]}} " +
      std::string("\x00\x00\x80\x3f\x00\x00\x00\xc0", 8);
  const absl::StatusOr<std::string> bytes = ReadFileToString(path);
  ASSERT_TRUE(bytes.ok());
  EXPECT_EQ(*bytes, expected);
  std::remove(path.c_str());
}

TEST(SafetensorsTest, MatchesTheReferenceLayoutWithoutMetadata) {
  // huggingface/safetensors' own serialization test: "attn.0", F32 [1, 2, 3] = 0..5; its JSON
  // is 64 bytes, so no padding; an empty file is "{}" + 6 spaces.
  const float values[6] = {0, 1, 2, 3, 4, 5};
  const std::string path = TempPath("reference.safetensors");
  ASSERT_TRUE(WriteSafetensors(path, {{"attn.0", DType::kF32, {1, 2, 3}, values, 24}}, {}).ok());
  const std::string header =
      "{\"attn.0\":{\"dtype\":\"F32\",\"shape\":[1,2,3],\"data_offsets\":[0,24]}}";
  EXPECT_EQ(*ReadFileToString(path),
            LittleEndian64(64) + header + std::string(reinterpret_cast<const char*>(values), 24));
  ASSERT_TRUE(WriteSafetensors(path, {}, {}).ok());
  EXPECT_EQ(*ReadFileToString(path), LittleEndian64(8) + "{}      ");
  EXPECT_TRUE(SafetensorsFile::Read(path).ok());
  std::remove(path.c_str());
}

// A small valid file written by us: two tensors and metadata.
std::string SmallValidFile() {
  const std::vector<float> a = NormalFloats(3, 3);
  const uint16_t b[2] = {7, 9};
  const std::string path = TempPath("small.safetensors");
  SL_CHECK_OK(WriteSafetensors(
      path, {{"a", DType::kF32, {3}, a.data(), 12}, {"b", DType::kU16, {1, 2}, b, 4}},
      {{"note", "x"}}));
  std::string bytes = *ReadFileToString(path);
  std::remove(path.c_str());
  return bytes;
}

TEST(SafetensorsTest, RefusesTruncationAtEveryByteOffsetNamingTheFile) {
  const std::string bytes = SmallValidFile();
  ASSERT_TRUE(SafetensorsFile::Parse(bytes, "whole.safetensors").ok());
  for (size_t length = 0; length < bytes.size(); ++length) {
    SCOPED_TRACE(absl::StrCat("truncated to ", length, " of ", bytes.size(), " bytes"));
    ExpectErrorWith(SafetensorsFile::Parse(bytes.substr(0, length), "cut.safetensors").status(),
                    {"cut.safetensors"});
  }
}

TEST(SafetensorsTest, SurvivesRandomByteCorruptionWithoutCrashing) {
  const std::string bytes = SmallValidFile();
  std::mt19937 rng(1234);
  int refused = 0;
  for (int trial = 0; trial < 3000; ++trial) {
    std::string mutated = bytes;
    const int flips = 1 + static_cast<int>(rng() % 3);
    for (int f = 0; f < flips; ++f) mutated[rng() % mutated.size()] = static_cast<char>(rng());
    const absl::StatusOr<SafetensorsFile> file = SafetensorsFile::Parse(mutated, "fuzz");
    if (!file.ok()) {
      ++refused;
      EXPECT_EQ(file.status().message().substr(0, 6), "fuzz: ");
      continue;
    }
    for (const std::string& name : file->names()) EXPECT_TRUE(file->Get(name).ok());
  }
  EXPECT_GT(refused, 1000);  // most flips land in the header, which is strict
}

struct CorruptCase {
  const char* problem;
  std::string header;
  size_t data_size;
  std::vector<absl::string_view> expected;  // substrings of the message
};

TEST(SafetensorsTest, RefusesCorruptHeadersNamingTheProblem) {
  const std::string a4 = "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}";
  const std::vector<CorruptCase> cases = {
      {"bad JSON", "{" + a4, 4, {"invalid JSON header at file byte 61", "expected ',' or '}'"}},
      {"trailing garbage", "{" + a4 + "} x", 4, {"expected only whitespace", "'x'"}},
      {"not an object", "[1, 2]", 0, {"header is an array, expected a JSON object"}},
      {"empty header", "", 0, {"expected a value, got end of input"}},
      {"overlapping offsets",
       "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
       "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
       12,
       {"tensor \"b\" data_offsets [4, 12] overlap tensor \"a\" [0, 8]"}},
      {"gap between tensors",
       "{" + a4 + ",\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
       12,
       {"gap of 4 bytes", "before tensor \"b\"", "tensor \"a\" ends at 4"}},
      {"first tensor not at 0",
       "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
       8,
       {"the first tensor must begin at 0"}},
      {"trailing data", "{" + a4 + "}", 8, {"4 trailing bytes belong to no tensor"}},
      {"size mismatch",
       "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}",
       8,
       {"tensor \"a\"", "hold 8 bytes, but shape [3] of F32 needs 12"}},
      {"unknown dtype",
       "{\"a\":{\"dtype\":\"F33\",\"shape\":[1],\"data_offsets\":[0,4]}}",
       4,
       {"tensor \"a\"", "unknown dtype \"F33\"", "supported: F32, BF16"}},
      {"unsupported dtype",
       "{\"a\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]}}",
       4,
       {"dtype \"F16\" is not supported by sinklab"}},
      {"duplicate name", "{" + a4 + "," + a4 + "}", 4, {"duplicate tensor name \"a\""}},
      {"missing dtype", "{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, {"missing \"dtype\""}},
      {"missing shape",
       "{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}",
       4,
       {"missing \"shape\""}},
      {"missing offsets",
       "{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}",
       4,
       {"missing \"data_offsets\""}},
      {"dtype not a string",
       "{\"a\":{\"dtype\":true,\"shape\":[1],\"data_offsets\":[0,4]}}",
       4,
       {"\"dtype\" is a boolean, expected a string"}},
      {"shape not an array",
       "{\"a\":{\"dtype\":\"F32\",\"shape\":\"1\",\"data_offsets\":[0,4]}}",
       4,
       {"\"shape\" is a string, expected an array"}},
      {"negative dim",
       "{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}",
       4,
       {"shape[0] is negative number -1"}},
      {"float dim",
       "{\"a\":{\"dtype\":\"F32\",\"shape\":[1.0],\"data_offsets\":[0,4]}}",
       4,
       {"shape[0] is non-integer number 1.0"}},
      {"null dim",
       "{\"a\":{\"dtype\":\"F32\",\"shape\":[null],\"data_offsets\":[0,4]}}",
       4,
       {"shape[0] is null"}},
      {"three offsets",
       "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,4]}}",
       4,
       {"\"data_offsets\" is an array of 3 items, expected an array [begin, end]"}},
      {"float offset",
       "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4e0]}}",
       4,
       {"data_offsets[1] is non-integer number 4e0"}},
      {"begin after end",
       "{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,0]}}",
       4,
       {"data_offsets [4, 0]: begin > end"}},
      {"offsets past the data", "{" + a4 + "}", 0, {"run past the end of the data section"}},
      {"size overflow",
       "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,0]}}",
       0,
       {"has more bytes than 2^64 - 1"}},
      {"offset beyond 64 bits",
       "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,18446744073709551616]}}",
       4,
       {"larger than 2^64 - 1"}},
      {"unexpected key",
       "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":1}}",
       4,
       {"unexpected key \"x\""}},
      {"tensor not an object", "{\"a\":[]}", 0, {"tensor \"a\"", "got an array"}},
      {"metadata value not a string",
       "{\"__metadata__\":{\"k\":1}}",
       0,
       {"\"__metadata__\"", "value of \"k\" is a number, expected a string"}},
      {"metadata not an object",
       "{\"__metadata__\":\"k\"}",
       0,
       {"\"__metadata__\"", "expected an object of strings, got a string"}},
      {"duplicate metadata",
       "{\"__metadata__\":{},\"__metadata__\":{}}",
       0,
       {"duplicate \"__metadata__\""}},
      {"invalid UTF-8 name", "{\"\xff\":{}}", 0, {"invalid UTF-8 in a string"}},
      {"lone surrogate", "{\"\\udc00\":{}}", 0, {"unpaired low surrogate"}},
      {"raw control byte", "{\"a\nb\":{}}", 0, {"control byte 0x0a in a string"}},
      {"bad escape", "{\"a\\qb\":{}}", 0, {"invalid escape after '\\' in a string: 'q'"}},
      {"deep nesting", std::string(100, '['), 0, {"nested deeper than 64"}},
  };
  for (const CorruptCase& c : cases) {
    SCOPED_TRACE(c.problem);
    const absl::Status status =
        SafetensorsFile::Parse(FileWithHeader(c.header, c.data_size), "bad.safetensors").status();
    ExpectErrorWith(status, {"bad.safetensors: "});
    for (const absl::string_view part : c.expected) ExpectErrorWith(status, {part});
  }
}

TEST(SafetensorsTest, RefusesHeaderLengthPastEndOfFileOrAbsurd) {
  const std::string header = "{}";
  ExpectErrorWith(
      SafetensorsFile::Parse(LittleEndian64(1000) + header, "short.safetensors").status(),
      {"short.safetensors: header length 1000 runs past the end of the file (10 bytes"});
  ExpectErrorWith(
      SafetensorsFile::Parse(LittleEndian64(uint64_t{1} << 63) + header, "huge").status(),
      {"huge: header length 9223372036854775808 exceeds the 100000000-byte limit"});
  ExpectErrorWith(SafetensorsFile::Parse("abc", "tiny").status(),
                  {"tiny: file is 3 bytes, shorter than the 8-byte header length"});
}

TEST(SafetensorsTest, AcceptsForeignLayoutsPrettyJsonEscapesAndAnyTensorOrder) {
  // Pretty-printed (as Python's json.dumps(indent=2) writes), tensors listed out of offset
  // order, an odd header length (no padding), escapes in names and metadata.
  const std::string header =
      "\r\n {\n  \"b\": {\"dtype\": \"I32\", \"shape\": [1], \"data_offsets\": [4, 8]},\n"
      "  \"__metadata__\": {\"k\\u00e9\": \"\\ud83d\\ude00\\\"\\/\\b\\f\\n\\r\\t\"},\n"
      "  \"a\\u0041\": {\"dtype\": \"U16\", \"shape\": [2], \"data_offsets\": [0, 4]}\n} ";
  ASSERT_EQ(header.size() % 2, 1u);
  std::string bytes = FileWithHeader(header, 8);
  bytes[bytes.size() - 8] = 5;  // aA[0] = 5
  bytes[bytes.size() - 4] = 9;  // b[0] = 9
  const absl::StatusOr<SafetensorsFile> file = SafetensorsFile::Parse(bytes, "foreign");
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->names(), (std::vector<std::string>{"aA", "b"}));
  EXPECT_EQ(file->metadata().at("k\xc3\xa9"), "\xf0\x9f\x98\x80\"/\b\f\n\r\t");
  const SafetensorsEntry a = *file->Get("aA");
  const SafetensorsEntry b = *file->Get("b");
  // Copied to an aligned buffer although the data section starts at an odd file offset.
  EXPECT_EQ(reinterpret_cast<uintptr_t>(a.data) % 8, 0u);
  EXPECT_EQ(static_cast<const uint16_t*>(a.data)[0], 5);
  EXPECT_EQ(static_cast<const int32_t*>(b.data)[0], 9);
}

TEST(SafetensorsTest, GetOfAMissingTensorIsNotFoundNamingFileAndTensor) {
  const absl::StatusOr<SafetensorsFile> file = SafetensorsFile::Parse(SmallValidFile(), "m.st");
  ASSERT_TRUE(file.ok());
  const absl::Status status = file->Get("nope").status();
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  ExpectErrorWith(status, {"m.st: no tensor named \"nope\"", "holds 2 tensors: \"a\", \"b\""});
  EXPECT_FALSE(file->Get("__metadata__").ok());
}

TEST(SafetensorsTest, ReadOfAMissingFileOrADirectoryNamesThePath) {
  const std::string missing = TempPath("missing.safetensors");
  ExpectErrorWith(SafetensorsFile::Read(missing).status(), {missing});
  const std::string dir = TempPath("ckpt_dir");
  ASSERT_TRUE(MakeDirs(dir).ok());
  ExpectErrorWith(SafetensorsFile::Read(dir).status(), {dir, "is a directory"});
  ::rmdir(dir.c_str());
}

TEST(SafetensorsTest, SuccessfulWriteReplacesTheOldFileAndLeavesNoTmp) {
  const std::string path = TempPath("replace.safetensors");
  const int32_t first = 1, second = 2;
  ASSERT_TRUE(WriteSafetensors(path, {{"x", DType::kI32, {}, &first, 4}}, {}).ok());
  ASSERT_TRUE(WriteSafetensors(path, {{"y", DType::kI32, {}, &second, 4}}, {}).ok());
  EXPECT_FALSE(Exists(path + ".tmp"));
  const absl::StatusOr<SafetensorsFile> file = SafetensorsFile::Read(path);
  ASSERT_TRUE(file.ok());
  EXPECT_EQ(file->names(), std::vector<std::string>{"y"});
  EXPECT_EQ(*static_cast<const int32_t*>(file->Get("y")->data), 2);
  std::remove(path.c_str());
}

TEST(SafetensorsTest, WriteToUnwritablePathFailsNamingItAndLeavesNoFile) {
  const int32_t x = 1;
  const std::vector<SafetensorsEntry> tensors = {{"x", DType::kI32, {1}, &x, 4}};
  const std::string missing_dir = "/nonexistent-sinklab-dir/w.safetensors";
  ExpectErrorWith(WriteSafetensors(missing_dir, tensors, {}), {missing_dir});
  EXPECT_FALSE(Exists(missing_dir + ".tmp"));

  // The target is a non-empty directory: the .tmp is written, the rename fails, and the .tmp
  // is removed (this also holds for root, unlike a read-only directory).
  const std::string dir = TempPath("target_is_a_dir");
  ASSERT_TRUE(MakeDirs(dir + "/child").ok());
  ExpectErrorWith(WriteSafetensors(dir, tensors, {}), {dir, "cannot rename"});
  EXPECT_FALSE(Exists(dir + ".tmp"));
  ::rmdir((dir + "/child").c_str());
  ::rmdir(dir.c_str());
}

TEST(SafetensorsTest, WriterRefusesInconsistentEntriesNamingTensorAndWritesNothing) {
  const float v[4] = {};
  const std::string path = TempPath("refused.safetensors");
  ExpectErrorWith(WriteSafetensors(path, {{"w", DType::kF32, {3}, v, 8}}, {}),
                  {path, "tensor \"w\"", "nbytes 8 does not match shape [3] of F32"});
  ExpectErrorWith(
      WriteSafetensors(path, {{"w", DType::kF32, {1}, v, 4}, {"w", DType::kF32, {1}, v, 4}}, {}),
      {"tensor \"w\": duplicate name"});
  ExpectErrorWith(WriteSafetensors(path, {{"__metadata__", DType::kF32, {1}, v, 4}}, {}),
                  {"reserved for metadata"});
  ExpectErrorWith(WriteSafetensors(path, {{"w", DType::kF32, {-1}, v, 4}}, {}),
                  {"negative dimension in shape [-1]"});
  ExpectErrorWith(WriteSafetensors(path, {{"w\xc0\xaf", DType::kF32, {1}, v, 4}}, {}),
                  {"not valid UTF-8"});
  ExpectErrorWith(WriteSafetensors(path, {}, {{"k", "\xed\xa0\x80"}}), {"metadata entry \"k\""});
  ExpectErrorWith(WriteSafetensors(path, {{"w", DType::kF32, {1}, nullptr, 4}}, {}),
                  {"data is null"});
  EXPECT_FALSE(Exists(path));
  EXPECT_FALSE(Exists(path + ".tmp"));
}

TEST(JsonMinTest, NumbersFollowTheJsonGrammarAndAsUint64IsExact) {
  for (const char* bad : {"01", "-", "1.", ".5", "1e", "+1", "0x10", "1e+"}) {
    EXPECT_FALSE(ParseJson(bad).ok()) << bad;
  }
  uint64_t value = 0;
  ASSERT_TRUE(ParseJson("18446744073709551615")->AsUint64(&value));
  EXPECT_EQ(value, UINT64_MAX);
  EXPECT_FALSE(ParseJson("18446744073709551616")->AsUint64(&value));
  EXPECT_FALSE(ParseJson("-0")->AsUint64(&value));
  EXPECT_FALSE(ParseJson("1E2")->AsUint64(&value));
  EXPECT_FALSE(ParseJson("\"1\"")->AsUint64(&value));
  ASSERT_TRUE(ParseJson(" 0 ")->AsUint64(&value));
  EXPECT_EQ(value, 0u);
  EXPECT_EQ(ParseJson("[-1.5e-3, true, false, null]")->items[0].text, "-1.5e-3");
}

TEST(JsonMinTest, ErrorsSayTheByteOffsetWithTheGivenBase) {
  ExpectErrorWith(ParseJson("{\"a\" 1}", 100).status(), {"byte 105: expected ':'"});
  ExpectErrorWith(ParseJson("\"abc").status(), {"unterminated string (it starts at byte 0)"});
  ExpectErrorWith(ParseJson("\"\\ud800x\"").status(), {"not followed by a low surrogate"});
  JsonLimits limits;
  limits.max_values = 3;
  ExpectErrorWith(ParseJson("[1,2,3]", 0, limits).status(), {"more than 3 JSON values"});
}

TEST(JsonMinTest, Utf8ValidationRejectsOverlongSurrogatesAndOutOfRange) {
  EXPECT_TRUE(IsValidUtf8("plain \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"));
  EXPECT_FALSE(IsValidUtf8("\xc0\x80"));          // overlong NUL
  EXPECT_FALSE(IsValidUtf8("\xe0\x80\xaf"));      // overlong '/'
  EXPECT_FALSE(IsValidUtf8("\xed\xa0\x80"));      // U+D800, a surrogate
  EXPECT_FALSE(IsValidUtf8("\xf4\x90\x80\x80"));  // U+110000
  EXPECT_FALSE(IsValidUtf8("\xe2\x82"));          // cut short
  EXPECT_FALSE(IsValidUtf8("\x80"));              // lone continuation byte
}

}  // namespace
}  // namespace sinklab

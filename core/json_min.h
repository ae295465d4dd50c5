// A small strict JSON parser (RFC 8259) for file headers we read (safetensors). It builds a
// tree; object members keep document order and duplicates (the caller decides what a
// duplicate means). Numbers keep their literal text; callers ask for the integer they need.
// Every error is an absl::InvalidArgumentError that says the byte offset and what was expected;
// any byte string is safe to parse (nesting depth and value count are bounded).
#ifndef SINKLAB_CORE_JSON_MIN_H_
#define SINKLAB_CORE_JSON_MIN_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace sinklab {

struct JsonMember;

struct JsonValue {
  enum class Kind : uint8_t { kNull, kBool, kNumber, kString, kArray, kObject };

  Kind kind = Kind::kNull;
  bool boolean = false;             // kBool
  std::string text;                 // kString: decoded UTF-8; kNumber: the literal as written
  std::vector<JsonValue> items;     // kArray
  std::vector<JsonMember> members;  // kObject, in document order, duplicates kept
  size_t offset = 0;                // byte offset of the value's first character (for messages)

  // For a number written as an integer (no fraction, no exponent) that is >= 0 and fits in
  // uint64: stores it in *value and returns true. Otherwise false (see DescribeNotUint64).
  bool AsUint64(uint64_t* value) const;
  // Why AsUint64 failed, e.g. "negative number -3", "non-integer number 2.5",
  // "a string": for messages "expected a non-negative integer, got <this>".
  std::string DescribeNotUint64() const;
};

struct JsonMember {
  std::string key;
  JsonValue value;
};

// "null", "a boolean", "a number", "a string", "an array", "an object".
const char* JsonKindName(JsonValue::Kind kind);

struct JsonLimits {
  int max_depth = 64;                   // nested arrays/objects
  size_t max_values = size_t{1} << 22;  // bounds memory on hostile input (~100 bytes/value)
};

// Parses exactly one JSON value surrounded by optional whitespace (space, \t, \n, \r);
// anything else after it is an error. `offset_base` is added to the byte offsets reported in
// error messages (e.g. 8 when `text` starts at file byte 8).
absl::StatusOr<JsonValue> ParseJson(absl::string_view text, size_t offset_base = 0,
                                    const JsonLimits& limits = JsonLimits());

// True when `text` is well-formed UTF-8 (no overlong forms, no surrogates, <= U+10FFFF).
bool IsValidUtf8(absl::string_view text);

}  // namespace sinklab

#endif  // SINKLAB_CORE_JSON_MIN_H_

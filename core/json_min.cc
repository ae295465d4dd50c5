#include "core/json_min.h"

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/status.h"

namespace sinklab {
namespace {

// Length of the well-formed UTF-8 sequence starting at text[i], or 0 if it is ill-formed.
// Byte ranges from the Unicode Standard, table 3-7 (also RFC 3629 section 4): they exclude
// overlong forms, the surrogates U+D800..U+DFFF and code points above U+10FFFF.
size_t Utf8SequenceLength(absl::string_view text, size_t i) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(text[k]); };
  const unsigned char lead = byte(i);
  if (lead < 0x80) return 1;
  size_t length = 0;
  unsigned char second_min = 0x80, second_max = 0xBF;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead == 0xE0) {
    length = 3, second_min = 0xA0;
  } else if ((lead >= 0xE1 && lead <= 0xEC) || lead == 0xEE || lead == 0xEF) {
    length = 3;
  } else if (lead == 0xED) {
    length = 3, second_max = 0x9F;
  } else if (lead == 0xF0) {
    length = 4, second_min = 0x90;
  } else if (lead >= 0xF1 && lead <= 0xF3) {
    length = 4;
  } else if (lead == 0xF4) {
    length = 4, second_max = 0x8F;
  } else {
    return 0;
  }
  if (text.size() - i < length) return 0;
  if (byte(i + 1) < second_min || byte(i + 1) > second_max) return 0;
  for (size_t k = 2; k < length; ++k) {
    if (byte(i + k) < 0x80 || byte(i + k) > 0xBF) return 0;
  }
  return length;
}

void AppendUtf8(uint32_t code_point, std::string* out) {
  if (code_point < 0x80) {
    out->push_back(static_cast<char>(code_point));
  } else if (code_point < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (code_point >> 6)));
    out->push_back(static_cast<char>(0x80 | (code_point & 0x3F)));
  } else if (code_point < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (code_point >> 12)));
    out->push_back(static_cast<char>(0x80 | ((code_point >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (code_point & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (code_point >> 18)));
    out->push_back(static_cast<char>(0x80 | ((code_point >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((code_point >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (code_point & 0x3F)));
  }
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// Shortens a literal for an error message.
std::string Clip(absl::string_view text) {
  return text.size() <= 32 ? std::string(text) : absl::StrCat(text.substr(0, 32), "...");
}

// Recursive descent over RFC 8259's grammar; pos_ is the next unread byte.
class Parser {
 public:
  Parser(absl::string_view text, size_t offset_base, const JsonLimits& limits)
      : text_(text), offset_base_(offset_base), limits_(limits) {}

  absl::Status ParseDocument(JsonValue* out) {
    SkipWhitespace();
    SL_RETURN_IF_ERROR(ParseValue(0, out));
    SkipWhitespace();
    if (pos_ != text_.size()) {
      return Error(absl::StrCat("expected only whitespace after the JSON value, got ", Here()));
    }
    return absl::OkStatus();
  }

 private:
  absl::Status Error(absl::string_view what) const {
    return absl::InvalidArgumentError(absl::StrCat("byte ", offset_base_ + pos_, ": ", what));
  }

  // The next byte, for messages: 'x', byte 0xNN, or end of input.
  std::string Here() const {
    if (pos_ >= text_.size()) return "end of input";
    const unsigned char c = static_cast<unsigned char>(text_[pos_]);
    if (c >= 0x20 && c < 0x7F) return absl::StrCat("'", std::string(1, static_cast<char>(c)), "'");
    return absl::StrFormat("byte 0x%02x", c);
  }

  bool At(char c) const { return pos_ < text_.size() && text_[pos_] == c; }

  void SkipWhitespace() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t' ||
                                   text_[pos_] == '\n' || text_[pos_] == '\r')) {
      ++pos_;
    }
  }

  absl::Status ParseValue(int depth, JsonValue* out) {
    if (++value_count_ > limits_.max_values) {
      return Error(absl::StrCat("more than ", limits_.max_values, " JSON values"));
    }
    out->offset = offset_base_ + pos_;
    if (pos_ >= text_.size()) return Error("expected a value, got end of input");
    const char c = text_[pos_];
    if (c == '{' || c == '[') {
      if (depth >= limits_.max_depth) {
        return Error(absl::StrCat("arrays/objects nested deeper than ", limits_.max_depth));
      }
      return c == '{' ? ParseObject(depth + 1, out) : ParseArray(depth + 1, out);
    }
    if (c == '"') {
      out->kind = JsonValue::Kind::kString;
      return ParseString(&out->text);
    }
    if (c == '-' || IsDigit(c)) {
      out->kind = JsonValue::Kind::kNumber;
      return ParseNumber(&out->text);
    }
    for (const char* literal : {"true", "false", "null"}) {
      if (text_.substr(pos_, std::char_traits<char>::length(literal)) == literal) {
        pos_ += std::char_traits<char>::length(literal);
        out->kind = literal[0] == 'n' ? JsonValue::Kind::kNull : JsonValue::Kind::kBool;
        out->boolean = literal[0] == 't';
        return absl::OkStatus();
      }
    }
    return Error(absl::StrCat("expected a value, got ", Here()));
  }

  absl::Status ParseObject(int depth, JsonValue* out) {
    out->kind = JsonValue::Kind::kObject;
    ++pos_;  // '{'
    SkipWhitespace();
    if (At('}')) {
      ++pos_;
      return absl::OkStatus();
    }
    while (true) {
      SkipWhitespace();
      if (!At('"'))
        return Error(absl::StrCat("expected '\"' starting an object key, got ", Here()));
      JsonMember member;
      SL_RETURN_IF_ERROR(ParseString(&member.key));
      SkipWhitespace();
      if (!At(':')) return Error(absl::StrCat("expected ':' after an object key, got ", Here()));
      ++pos_;
      SkipWhitespace();
      SL_RETURN_IF_ERROR(ParseValue(depth, &member.value));
      out->members.push_back(std::move(member));
      SkipWhitespace();
      if (At(',')) {
        ++pos_;
      } else if (At('}')) {
        ++pos_;
        return absl::OkStatus();
      } else {
        return Error(absl::StrCat("expected ',' or '}' in an object, got ", Here()));
      }
    }
  }

  absl::Status ParseArray(int depth, JsonValue* out) {
    out->kind = JsonValue::Kind::kArray;
    ++pos_;  // '['
    SkipWhitespace();
    if (At(']')) {
      ++pos_;
      return absl::OkStatus();
    }
    while (true) {
      SkipWhitespace();
      out->items.emplace_back();
      SL_RETURN_IF_ERROR(ParseValue(depth, &out->items.back()));
      SkipWhitespace();
      if (At(',')) {
        ++pos_;
      } else if (At(']')) {
        ++pos_;
        return absl::OkStatus();
      } else {
        return Error(absl::StrCat("expected ',' or ']' in an array, got ", Here()));
      }
    }
  }

  // Four hex digits at pos_ (after "\u"); advances past them.
  absl::Status ParseHex4(uint32_t* value) {
    *value = 0;
    for (int i = 0; i < 4; ++i, ++pos_) {
      const char c = pos_ < text_.size() ? text_[pos_] : '\0';
      int digit;
      if (IsDigit(c)) {
        digit = c - '0';
      } else if (c >= 'a' && c <= 'f') {
        digit = c - 'a' + 10;
      } else if (c >= 'A' && c <= 'F') {
        digit = c - 'A' + 10;
      } else {
        return Error(absl::StrCat("expected 4 hex digits after \\u, got ", Here()));
      }
      *value = *value * 16 + static_cast<uint32_t>(digit);
    }
    return absl::OkStatus();
  }

  absl::Status ParseString(std::string* out) {
    const size_t start = offset_base_ + pos_;
    ++pos_;  // '"'
    while (pos_ < text_.size()) {
      const unsigned char c = static_cast<unsigned char>(text_[pos_]);
      if (c == '"') {
        ++pos_;
        return absl::OkStatus();
      }
      if (c < 0x20)
        return Error(absl::StrFormat("control byte 0x%02x in a string (must be escaped)", c));
      if (c >= 0x80) {
        const size_t length = Utf8SequenceLength(text_, pos_);
        if (length == 0) return Error("invalid UTF-8 in a string");
        out->append(text_.data() + pos_, length);
        pos_ += length;
        continue;
      }
      if (c != '\\') {
        out->push_back(static_cast<char>(c));
        ++pos_;
        continue;
      }
      ++pos_;  // '\\'
      const char escape = pos_ < text_.size() ? text_[pos_] : '\0';
      const char* const kEscapes = "\"\\/bfnrt";
      const char* const kDecoded = "\"\\/\b\f\n\r\t";
      const char* found = escape ? std::char_traits<char>::find(kEscapes, 8, escape) : nullptr;
      if (found != nullptr) {
        out->push_back(kDecoded[found - kEscapes]);
        ++pos_;
        continue;
      }
      if (escape != 'u') {
        return Error(absl::StrCat("invalid escape after '\\' in a string: ", Here()));
      }
      ++pos_;
      uint32_t code_point;
      SL_RETURN_IF_ERROR(ParseHex4(&code_point));
      if (code_point >= 0xDC00 && code_point <= 0xDFFF) {
        return Error("unpaired low surrogate in a \\u escape");
      }
      if (code_point >= 0xD800 && code_point <= 0xDBFF) {  // UTF-16 pair, RFC 8259 section 7
        if (text_.substr(pos_, 2) != "\\u") {
          return Error("high surrogate \\u escape not followed by a low surrogate \\u escape");
        }
        pos_ += 2;
        uint32_t low;
        SL_RETURN_IF_ERROR(ParseHex4(&low));
        if (low < 0xDC00 || low > 0xDFFF) {
          return Error("high surrogate \\u escape not followed by a low surrogate \\u escape");
        }
        code_point = 0x10000 + ((code_point - 0xD800) << 10) + (low - 0xDC00);
      }
      AppendUtf8(code_point, out);
    }
    return Error(absl::StrCat("unterminated string (it starts at byte ", start, ")"));
  }

  // number = [ '-' ] ( '0' | [1-9] digit* ) [ '.' digit+ ] [ ( 'e' | 'E' ) [ '+' | '-' ] digit+ ]
  absl::Status ParseNumber(std::string* literal) {
    const size_t start = pos_;
    const auto digits = [&]() {
      const size_t first = pos_;
      while (pos_ < text_.size() && IsDigit(text_[pos_])) ++pos_;
      return pos_ - first;
    };
    if (At('-')) ++pos_;
    if (At('0')) {
      ++pos_;
      if (pos_ < text_.size() && IsDigit(text_[pos_])) return Error("leading zero in a number");
    } else if (digits() == 0) {
      return Error(absl::StrCat("expected a digit in a number, got ", Here()));
    }
    if (At('.')) {
      ++pos_;
      if (digits() == 0) return Error(absl::StrCat("expected a digit after '.', got ", Here()));
    }
    if (At('e') || At('E')) {
      ++pos_;
      if (At('+') || At('-')) ++pos_;
      if (digits() == 0)
        return Error(absl::StrCat("expected a digit in an exponent, got ", Here()));
    }
    *literal = std::string(text_.substr(start, pos_ - start));
    return absl::OkStatus();
  }

  absl::string_view text_;
  size_t offset_base_;
  JsonLimits limits_;
  size_t pos_ = 0;
  size_t value_count_ = 0;
};

}  // namespace

const char* JsonKindName(JsonValue::Kind kind) {
  switch (kind) {
    case JsonValue::Kind::kNull:
      return "null";
    case JsonValue::Kind::kBool:
      return "a boolean";
    case JsonValue::Kind::kNumber:
      return "a number";
    case JsonValue::Kind::kString:
      return "a string";
    case JsonValue::Kind::kArray:
      return "an array";
    case JsonValue::Kind::kObject:
      return "an object";
  }
  return "?";
}

bool JsonValue::AsUint64(uint64_t* value) const {
  if (kind != Kind::kNumber || text.empty()) return false;
  uint64_t result = 0;
  for (const char c : text) {
    if (!IsDigit(c)) return false;  // '-', '.', 'e', 'E', '+'
    if (__builtin_mul_overflow(result, uint64_t{10}, &result) ||
        __builtin_add_overflow(result, static_cast<uint64_t>(c - '0'), &result)) {
      return false;
    }
  }
  *value = result;
  return true;
}

std::string JsonValue::DescribeNotUint64() const {
  if (kind != Kind::kNumber) return JsonKindName(kind);
  if (text[0] == '-') return absl::StrCat("negative number ", Clip(text));
  if (text.find_first_of(".eE") != std::string::npos) {
    return absl::StrCat("non-integer number ", Clip(text));
  }
  return absl::StrCat("number ", Clip(text), " (larger than 2^64 - 1)");
}

absl::StatusOr<JsonValue> ParseJson(absl::string_view text, size_t offset_base,
                                    const JsonLimits& limits) {
  JsonValue value;
  SL_RETURN_IF_ERROR(Parser(text, offset_base, limits).ParseDocument(&value));
  return value;
}

bool IsValidUtf8(absl::string_view text) {
  for (size_t i = 0; i < text.size();) {
    const size_t length = Utf8SequenceLength(text, i);
    if (length == 0) return false;
    i += length;
  }
  return true;
}

}  // namespace sinklab

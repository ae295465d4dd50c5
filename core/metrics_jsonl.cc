#include "core/metrics_jsonl.h"

#include <cerrno>
#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/status.h"

namespace sinklab {

std::string JsonEscape(const std::string& text) {
  std::string out = "\"";
  for (const unsigned char c : text) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      default:
        if (c < 0x20) {
          out += absl::StrFormat("\\u%04x", c);
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

JsonRecord& JsonRecord::Add(const std::string& key, double value) {
  fields_.emplace_back(key, std::isfinite(value) ? absl::StrFormat("%.9g", value) : "null");
  return *this;
}

JsonRecord& JsonRecord::Add(const std::string& key, int64_t value) {
  fields_.emplace_back(key, absl::StrCat(value));
  return *this;
}

JsonRecord& JsonRecord::AddString(const std::string& key, const std::string& value) {
  fields_.emplace_back(key, JsonEscape(value));
  return *this;
}

std::string JsonRecord::ToJson() const {
  std::string out = "{";
  for (size_t i = 0; i < fields_.size(); ++i) {
    absl::StrAppend(&out, i ? ", " : "", JsonEscape(fields_[i].first), ": ", fields_[i].second);
  }
  return out + "}";
}

JsonlWriter::~JsonlWriter() {
  if (file_ != nullptr) std::fclose(file_);
}

absl::Status JsonlWriter::Open(const std::string& path) {
  path_ = path;
  file_ = std::fopen(path.c_str(), "a");
  if (file_ == nullptr) {
    return absl::InternalError(absl::StrCat(path, ": cannot open for writing: ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

absl::Status JsonlWriter::Append(const JsonRecord& record) { return AppendLine(record.ToJson()); }

absl::Status JsonlWriter::AppendLine(const std::string& json) {
  SL_CHECK_MSG(file_ != nullptr, absl::StrCat("JsonlWriter::AppendLine before Open: ", path_));
  const std::string line = json + "\n";
  if (std::fwrite(line.data(), 1, line.size(), file_) != line.size() || std::fflush(file_) != 0) {
    return absl::InternalError(absl::StrCat(path_, ": write failed: ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

}  // namespace sinklab

// metrics.jsonl writer: one JSON object per logged step, keys in insertion order, flushed
// per line so a crash loses at most the line being written.
#ifndef SINKLAB_CORE_METRICS_JSONL_H_
#define SINKLAB_CORE_METRICS_JSONL_H_

#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"

namespace sinklab {

// A flat JSON object of numbers (and a few strings), built in order.
class JsonRecord {
 public:
  JsonRecord& Add(const std::string& key, double value);
  JsonRecord& Add(const std::string& key, int64_t value);
  JsonRecord& AddString(const std::string& key, const std::string& value);
  // {"step": 10, "loss": 3.25}: finite doubles with 9 significant digits (exact for fp32);
  // NaN and infinities as null (JSON has no literal for them).
  std::string ToJson() const;

 private:
  std::vector<std::pair<std::string, std::string>> fields_;  // key, JSON-encoded value
};

std::string JsonEscape(const std::string& text);

class JsonlWriter {
 public:
  JsonlWriter() = default;
  ~JsonlWriter();
  JsonlWriter(const JsonlWriter&) = delete;
  JsonlWriter& operator=(const JsonlWriter&) = delete;

  // Opens `path` for appending (creates it).
  absl::Status Open(const std::string& path);
  absl::Status Append(const JsonRecord& record);
  // Appends one line of already-encoded JSON (no newline inside).
  absl::Status AppendLine(const std::string& json);
  bool is_open() const { return file_ != nullptr; }

 private:
  std::string path_;
  std::FILE* file_ = nullptr;
};

}  // namespace sinklab

#endif  // SINKLAB_CORE_METRICS_JSONL_H_

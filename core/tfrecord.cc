#include "core/tfrecord.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/crc32c.h"
#include "core/file_util.h"
#include "core/status.h"

namespace sinklab {
namespace {

constexpr size_t kLengthBytes = 8;
constexpr size_t kCrcBytes = 4;
constexpr size_t kHeaderBytes = kLengthBytes + kCrcBytes;

void AppendLittleEndian(uint64_t value, size_t num_bytes, std::string* out) {
  for (size_t b = 0; b < num_bytes; ++b)
    out->push_back(static_cast<char>((value >> (8 * b)) & 0xFF));
}

uint64_t LoadLittleEndian(const char* p, size_t num_bytes) {
  uint64_t value = 0;
  for (size_t b = 0; b < num_bytes; ++b) {
    value |= static_cast<uint64_t>(static_cast<unsigned char>(p[b])) << (8 * b);
  }
  return value;
}

uint32_t MaskedCrcOf(const char* p, size_t size) { return MaskCrc32c(Crc32c(p, size)); }

}  // namespace

void AppendTfRecord(absl::string_view data, std::string* out) {
  const size_t start = out->size();
  AppendLittleEndian(data.size(), kLengthBytes, out);
  AppendLittleEndian(MaskedCrcOf(out->data() + start, kLengthBytes), kCrcBytes, out);
  out->append(data.data(), data.size());
  AppendLittleEndian(MaskedCrcOf(data.data(), data.size()), kCrcBytes, out);
}

absl::StatusOr<std::vector<std::string>> ParseTfRecords(absl::string_view bytes,
                                                        const std::string& name) {
  std::vector<std::string> records;
  size_t offset = 0;
  while (offset < bytes.size()) {
    const size_t remaining = bytes.size() - offset;
    const char* record = bytes.data() + offset;
    const auto where = [&] {
      return absl::StrCat(name, ": record ", records.size(), " at byte ", offset);
    };
    if (remaining < kHeaderBytes) {
      return absl::DataLossError(absl::StrCat(where(), ": file ends at byte ", bytes.size(),
                                              " but a record header needs ", kHeaderBytes,
                                              " bytes (truncated?)"));
    }
    const uint64_t length = LoadLittleEndian(record, kLengthBytes);
    const uint32_t length_crc =
        static_cast<uint32_t>(LoadLittleEndian(record + kLengthBytes, kCrcBytes));
    if (length_crc != MaskedCrcOf(record, kLengthBytes)) {
      return absl::DataLossError(absl::StrCat(where(), ": length CRC mismatch (corrupt header)"));
    }
    // Compare without overflow: length may be anything up to 2^64 - 1.
    if (length > remaining - kHeaderBytes || remaining - kHeaderBytes - length < kCrcBytes) {
      return absl::DataLossError(absl::StrCat(
          where(), ": record of ", length, " data bytes needs ", kHeaderBytes, " + ", length, " + ",
          kCrcBytes, " bytes but only ", remaining, " remain (truncated?)"));
    }
    const char* data = record + kHeaderBytes;
    const uint32_t data_crc = static_cast<uint32_t>(LoadLittleEndian(data + length, kCrcBytes));
    if (data_crc != MaskedCrcOf(data, length)) {
      return absl::DataLossError(
          absl::StrCat(where(), ": data CRC mismatch (corrupt data at bytes ",
                       offset + kHeaderBytes, "..", offset + kHeaderBytes + length, ")"));
    }
    records.emplace_back(data, length);
    offset += kHeaderBytes + length + kCrcBytes;
  }
  return records;
}

absl::StatusOr<std::vector<std::string>> ReadTfRecords(const std::string& path) {
  SL_ASSIGN_OR_RETURN(const std::string bytes, ReadFileToString(path));
  return ParseTfRecords(bytes, path);
}

}  // namespace sinklab

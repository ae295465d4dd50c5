// TFRecord framing (tensorflow/core/lib/io/record_writer.h), the container of TensorBoard
// event files. Each record, all integers little-endian:
//   bytes [0, 8)          uint64 length n of the data
//   bytes [8, 12)         uint32 MaskCrc32c(Crc32c(bytes [0, 8)))
//   bytes [12, 12 + n)    the data
//   bytes [12 + n, 16 + n) uint32 MaskCrc32c(Crc32c(data))
// Records follow each other with no padding; a file is zero or more whole records.
#ifndef SINKLAB_CORE_TFRECORD_H_
#define SINKLAB_CORE_TFRECORD_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace sinklab {

// Bytes a record adds around its data: 8 (length) + 4 (length CRC) + 4 (data CRC).
inline constexpr size_t kTfRecordOverheadBytes = 16;

// Appends the framed record holding `data` to `out`.
void AppendTfRecord(absl::string_view data, std::string* out);

// Splits a whole file's bytes into its records' data, verifying both CRCs of every record.
// `name` (a path) starts every error message, which also gives the byte offset of the record
// and what is wrong, e.g. "runs/x/events...: record at byte 120: file ends at byte 130 but the
// record needs 12 header bytes" (DataLoss for truncation and CRC mismatches). Never reads
// outside `bytes` and never allocates more than bytes.size() (fuzz target).
absl::StatusOr<std::vector<std::string>> ParseTfRecords(absl::string_view bytes,
                                                        const std::string& name);

// ParseTfRecords on the contents of the file at `path`; NotFound when it cannot be read.
absl::StatusOr<std::vector<std::string>> ReadTfRecords(const std::string& path);

}  // namespace sinklab

#endif  // SINKLAB_CORE_TFRECORD_H_

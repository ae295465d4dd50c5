// safetensors reader and writer (our own code; format of huggingface/safetensors):
//   bytes [0, 8)       N, little-endian uint64: the header length
//   bytes [8, 8 + N)   UTF-8 JSON object: {"__metadata__": {"k": "v", ...},   (optional)
//                        "<name>": {"dtype": "F32", "shape": [2, 3], "data_offsets": [b, e]}, ...}
//   bytes [8 + N, end) the data section; a tensor's bytes are [b, e) of it, row-major,
//                      little-endian. The tensors tile the data section exactly, no gaps.
// The reader is strict: anything else is an error naming the file (and the tensor, the JSON
// byte offset) and what was expected; it never crashes on any byte string.
#ifndef SINKLAB_CORE_SAFETENSORS_H_
#define SINKLAB_CORE_SAFETENSORS_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/dtype.h"

namespace sinklab {

// One tensor: `data` points at nbytes = prod(shape) * DTypeSize(dtype) bytes (shape [] is a
// scalar of one element; a dim of 0 makes a zero-size tensor).
struct SafetensorsEntry {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  const void* data;
  size_t nbytes;
};

// Writes `tensors` (in the given order, data contiguous) and `metadata` (as "__metadata__",
// omitted when empty) to `path`. The header is compact JSON padded with spaces to a multiple
// of 8 bytes, as the reference implementation does, so every tensor starts 8-byte aligned
// when the tensors before it have sizes that are multiples of 8. Written to `path + ".tmp"`,
// fsync'ed, renamed over `path`, then the directory is fsync'ed: a crash leaves the old file
// or the new one under `path`, never a partial one. On error no `.tmp` is left behind.
// Errors: InvalidArgument for bad entries (duplicate or non-UTF-8 name, nbytes != shape *
// dtype size, ...); I/O errors carry the errno's code (absl::ErrnoToStatus). Every message
// names `path`.
absl::Status WriteSafetensors(const std::string& path, const std::vector<SafetensorsEntry>& tensors,
                              const std::map<std::string, std::string>& metadata);

// A parsed file held in memory (read fully; fine for our sizes). Movable, not copyable.
class SafetensorsFile {
 public:
  // Reads and parses the file at `path`; errors are prefixed with the path.
  static absl::StatusOr<SafetensorsFile> Read(const std::string& path);
  // Parses a whole file's bytes; `name` (a path) prefixes error messages. Validation errors
  // are InvalidArgument, except a file cut short (header or data past the end), DataLoss.
  static absl::StatusOr<SafetensorsFile> Parse(std::string bytes, const std::string& name);

  SafetensorsFile(SafetensorsFile&&) = default;
  SafetensorsFile& operator=(SafetensorsFile&&) = default;
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& name() const { return name_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // Tensor names in data-offset order (ties between zero-size tensors: header order).
  std::vector<std::string> names() const;
  // The tensor's view into this object's buffer: valid while this object lives and is not
  // moved from or assigned to. `data` is 8-byte aligned when the tensor's offset is.
  // NotFound naming the file and the tensor when there is no such tensor.
  absl::StatusOr<SafetensorsEntry> Get(const std::string& name) const;

 private:
  struct Info {
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
    uint64_t begin;  // byte offsets in the data section
    uint64_t end;
  };

  SafetensorsFile() = default;

  std::string name_;
  std::string bytes_;      // holds the data section at data_start_
  size_t data_start_ = 0;  // 8 + N, or 0 when the data section was copied to align it
  std::map<std::string, std::string> metadata_;
  std::vector<Info> infos_;              // sorted by (begin, end), then header order
  std::map<std::string, size_t> index_;  // name -> position in infos_
};

}  // namespace sinklab

#endif  // SINKLAB_CORE_SAFETENSORS_H_

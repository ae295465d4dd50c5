// Token shards in llm.c's format (karpathy/llm.c, dev/data/data_common.py `write_datafile`):
// a header of 256 little-endian int32 (header[0] magic, header[1] version, header[2] token
// count, the rest zero; llm.c readers ignore the rest and so do we), then the tokens,
// little-endian:
//   magic 20240520, version 1: uint16 tokens (GPT-2 style vocabularies, and our byte level);
//   magic 20240801, version 7: uint32 tokens (Llama-3 style vocabularies).
// The file size is exactly 1024 + count * itemsize; readers check magic, version and size and
// name the shard and what was expected.
#ifndef SINKLAB_DATA_SHARD_H_
#define SINKLAB_DATA_SHARD_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace sinklab {

enum class TokenWidth { kUint16, kUint32 };

inline constexpr int32_t kShardMagicUint16 = 20240520;
inline constexpr int32_t kShardVersionUint16 = 1;
inline constexpr int32_t kShardMagicUint32 = 20240801;
inline constexpr int32_t kShardVersionUint32 = 7;
inline constexpr int kShardHeaderInts = 256;
inline constexpr size_t kShardHeaderBytes = kShardHeaderInts * sizeof(int32_t);  // 1024

// Bytes per token: 2 or 4.
size_t TokenBytes(TokenWidth width);
// "uint16" or "uint32".
const char* TokenWidthName(TokenWidth width);

struct ShardHeader {
  TokenWidth width = TokenWidth::kUint16;
  int64_t num_tokens = 0;
};

// Validates the first `size` bytes of a shard whose whole file is `file_size` bytes and fills
// `header`. Needs size >= min(file_size, 1024); checks the magic, the version, a non-negative
// count and file_size == 1024 + count * itemsize. Messages name the problem and the byte
// offset but not the file (callers prepend it). Never reads past data[size) (fuzz target).
absl::Status ParseShardHeader(const uint8_t* data, size_t size, uint64_t file_size,
                              ShardHeader* header);

// Writes `tokens` as a shard to `path + ".tmp"`, then renames it to `path`. Refuses (naming
// the path, the token and its index) a token > 65535 for kUint16, and more than 2^31 - 1
// tokens (the header's count is an int32).
absl::Status WriteShard(const std::string& path, absl::Span<const uint32_t> tokens,
                        TokenWidth width);

// Reads the header of the shard at `path` (checking it against the file's size).
absl::StatusOr<ShardHeader> ReadShardHeader(const std::string& path);

// Appends the tokens of the shard at `path` to `tokens` (widened to uint32). Errors name the
// path, e.g. "data/x.bin: header says 1000 tokens (uint16) so the file should be 3024 bytes,
// but it is 2000 bytes (truncated?)".
absl::Status AppendShardTokens(const std::string& path, std::vector<uint32_t>* tokens);

// The tokens of the shard at `path`.
absl::StatusOr<std::vector<uint32_t>> ReadShard(const std::string& path);

}  // namespace sinklab

#endif  // SINKLAB_DATA_SHARD_H_

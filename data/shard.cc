#include "data/shard.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/file_util.h"
#include "core/status.h"

namespace sinklab {
namespace {

int32_t LoadLittleEndianInt32(const uint8_t* p) {
  return static_cast<int32_t>(static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 |
                              static_cast<uint32_t>(p[2]) << 16 |
                              static_cast<uint32_t>(p[3]) << 24);
}

void StoreLittleEndian(uint32_t value, int num_bytes, char* out) {
  for (int b = 0; b < num_bytes; ++b) out[b] = static_cast<char>((value >> (8 * b)) & 0xFF);
}

// Owns a file descriptor; closes it when it goes out of scope.
class FileDescriptor {
 public:
  explicit FileDescriptor(int fd) : fd_(fd) {}
  FileDescriptor(FileDescriptor&& other) : fd_(other.fd_) { other.fd_ = -1; }
  FileDescriptor& operator=(FileDescriptor&&) = delete;
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  ~FileDescriptor() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

// Reads exactly `size` bytes at the current position (`offset`, for messages); fewer means the
// file changed under us.
absl::Status ReadExactly(int fd, const std::string& path, uint64_t offset, size_t size,
                         uint8_t* out) {
  size_t done = 0;
  while (done < size) {
    const ssize_t n = ::read(fd, out + done, size - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      return absl::DataLossError(absl::StrCat(path, ": read error at byte ", offset + done, ": ",
                                              std::strerror(errno)));
    }
    if (n == 0) {
      return absl::DataLossError(absl::StrCat(path, ": unexpected end of file at byte ",
                                              offset + done, " (did the file change?)"));
    }
    done += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

// Opens `path` and reads and checks its header; returns the descriptor positioned after it.
absl::StatusOr<FileDescriptor> OpenShard(const std::string& path, ShardHeader* header) {
  FileDescriptor file(::open(path.c_str(), O_RDONLY));
  if (file.get() < 0) {
    return absl::NotFoundError(absl::StrCat(path, ": cannot open: ", std::strerror(errno)));
  }
  struct stat info;
  if (::fstat(file.get(), &info) != 0) {
    return absl::DataLossError(absl::StrCat(path, ": cannot stat: ", std::strerror(errno)));
  }
  const uint64_t file_size = static_cast<uint64_t>(info.st_size);
  uint8_t bytes[kShardHeaderBytes];
  const size_t header_size = static_cast<size_t>(std::min<uint64_t>(file_size, kShardHeaderBytes));
  SL_RETURN_IF_ERROR(ReadExactly(file.get(), path, 0, header_size, bytes));
  const absl::Status parsed = ParseShardHeader(bytes, header_size, file_size, header);
  if (!parsed.ok()) return Annotate(parsed, path);
  return file;
}

}  // namespace

size_t TokenBytes(TokenWidth width) { return width == TokenWidth::kUint16 ? 2 : 4; }

const char* TokenWidthName(TokenWidth width) {
  return width == TokenWidth::kUint16 ? "uint16" : "uint32";
}

absl::Status ParseShardHeader(const uint8_t* data, size_t size, uint64_t file_size,
                              ShardHeader* header) {
  if (file_size < kShardHeaderBytes) {
    return absl::DataLossError(absl::StrCat("the file is ", file_size,
                                            " bytes, shorter than the ", kShardHeaderBytes,
                                            "-byte shard header (truncated?)"));
  }
  if (size < kShardHeaderBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("only ", size, " header bytes given, need ", kShardHeaderBytes));
  }
  const int32_t magic = LoadLittleEndianInt32(data);
  const int32_t version = LoadLittleEndianInt32(data + 4);
  const int32_t count = LoadLittleEndianInt32(data + 8);
  TokenWidth width;
  int32_t expected_version;
  if (magic == kShardMagicUint16) {
    width = TokenWidth::kUint16;
    expected_version = kShardVersionUint16;
  } else if (magic == kShardMagicUint32) {
    width = TokenWidth::kUint32;
    expected_version = kShardVersionUint32;
  } else {
    return absl::DataLossError(absl::StrFormat(
        "bad magic %d at byte 0 (expected %d for uint16 or %d for uint32 shards)", magic,
        kShardMagicUint16, kShardMagicUint32));
  }
  if (version != expected_version) {
    return absl::DataLossError(
        absl::StrFormat("bad version %d at byte 4 for magic %d (expected %d for %s shards)",
                        version, magic, expected_version, TokenWidthName(width)));
  }
  if (count < 0) {
    return absl::DataLossError(absl::StrCat("negative token count ", count, " at byte 8"));
  }
  const uint64_t expected_size =
      kShardHeaderBytes + static_cast<uint64_t>(count) * TokenBytes(width);
  if (file_size != expected_size) {
    return absl::DataLossError(absl::StrFormat(
        "header says %d tokens (%s) so the file should be %d bytes, but it is %d bytes (%s)",
        count, TokenWidthName(width), expected_size, file_size,
        file_size < expected_size ? "truncated?" : "too long: trailing bytes?"));
  }
  header->width = width;
  header->num_tokens = count;
  return absl::OkStatus();
}

absl::Status WriteShard(const std::string& path, absl::Span<const uint32_t> tokens,
                        TokenWidth width) {
  if (tokens.size() > static_cast<size_t>(std::numeric_limits<int32_t>::max())) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": ", tokens.size(),
                     " tokens do not fit one shard (the header's count is an int32)"));
  }
  const size_t item = TokenBytes(width);
  if (width == TokenWidth::kUint16) {
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (tokens[i] > 0xFFFF) {
        return absl::InvalidArgumentError(absl::StrCat(
            path, ": token ", tokens[i], " at index ", i,
            " does not fit a uint16 shard (max 65535); write a uint32 shard"));
      }
    }
  }
  std::string content(kShardHeaderBytes + tokens.size() * item, '\0');
  const bool narrow = width == TokenWidth::kUint16;
  StoreLittleEndian(narrow ? kShardMagicUint16 : kShardMagicUint32, 4, &content[0]);
  StoreLittleEndian(narrow ? kShardVersionUint16 : kShardVersionUint32, 4, &content[4]);
  StoreLittleEndian(static_cast<uint32_t>(tokens.size()), 4, &content[8]);
  char* out = &content[kShardHeaderBytes];
  for (size_t i = 0; i < tokens.size(); ++i) StoreLittleEndian(tokens[i], item, out + i * item);
  return WriteFileAtomically(path, content);
}

absl::StatusOr<ShardHeader> ReadShardHeader(const std::string& path) {
  ShardHeader header;
  SL_RETURN_IF_ERROR(OpenShard(path, &header).status());
  return header;
}

absl::Status AppendShardTokens(const std::string& path, std::vector<uint32_t>* tokens) {
  ShardHeader header;
  SL_ASSIGN_OR_RETURN(const FileDescriptor file, OpenShard(path, &header));
  const size_t item = TokenBytes(header.width);
  tokens->reserve(tokens->size() + header.num_tokens);
  // Reads in chunks so a large shard is not held twice in memory.
  constexpr size_t kChunkTokens = size_t{1} << 18;
  std::vector<uint8_t> chunk(kChunkTokens * item);
  uint64_t offset = kShardHeaderBytes;
  for (int64_t done = 0; done < header.num_tokens;) {
    const size_t n = static_cast<size_t>(
        std::min<int64_t>(kChunkTokens, header.num_tokens - done));
    SL_RETURN_IF_ERROR(ReadExactly(file.get(), path, offset, n * item, chunk.data()));
    for (size_t i = 0; i < n; ++i) {
      const uint8_t* p = chunk.data() + i * item;
      tokens->push_back(item == 2 ? static_cast<uint32_t>(p[0] | p[1] << 8)
                                  : static_cast<uint32_t>(LoadLittleEndianInt32(p)));
    }
    done += static_cast<int64_t>(n);
    offset += n * item;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<uint32_t>> ReadShard(const std::string& path) {
  std::vector<uint32_t> tokens;
  SL_RETURN_IF_ERROR(AppendShardTokens(path, &tokens));
  return tokens;
}

}  // namespace sinklab

#include "core/safetensors.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "core/file_util.h"
#include "core/json_min.h"
#include "core/metrics_jsonl.h"
#include "core/status.h"

namespace sinklab {
namespace {

constexpr size_t kLengthBytes = 8;  // the little-endian uint64 header length N
// The reference implementation's MAX_HEADER_SIZE (huggingface/safetensors, tensor.rs).
constexpr uint64_t kMaxHeaderBytes = 100000000;
constexpr DType kDTypes[] = {DType::kF32, DType::kBF16, DType::kI32, DType::kU16, DType::kU32};
// Other dtypes of the safetensors format, which sinklab does not read.
constexpr const char* kOtherFormatDTypes[] = {"BOOL",    "U8",  "I8",      "F8_E5M2", "F8_E4M3",
                                              "F8_E8M0", "F4",  "F6_E2M3", "F6_E3M2", "I16",
                                              "F16",     "F64", "I64",     "U64",     "C64"};
constexpr char kSupportedDTypes[] = "supported: F32, BF16, I32, U16, U32";

// A name as it would appear in JSON (quoted, escaped), safe to print in any message.
std::string Quote(absl::string_view text) { return JsonEscape(std::string(text)); }

std::string ShapeString(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

uint64_t LoadLittleEndian64(const char* bytes) {
  uint64_t value = 0;
  for (int i = 7; i >= 0; --i) value = (value << 8) | static_cast<unsigned char>(bytes[i]);
  return value;
}

std::string StoreLittleEndian64(uint64_t value) {
  std::string bytes(kLengthBytes, '\0');
  for (size_t i = 0; i < kLengthBytes; ++i) bytes[i] = static_cast<char>((value >> (8 * i)) & 0xFF);
  return bytes;
}

// prod(shape) * DTypeSize(dtype) in *nbytes; false when it overflows 64 bits.
bool CheckedByteSize(const std::vector<int64_t>& shape, DType dtype, uint64_t* nbytes) {
  uint64_t size = DTypeSize(dtype);
  for (const int64_t dim : shape) {
    if (__builtin_mul_overflow(size, static_cast<uint64_t>(dim), &size)) return false;
  }
  *nbytes = size;
  return true;
}

// ---- Reading -----------------------------------------------------------------------------

absl::Status ParseMetadata(const JsonValue& value, const std::string& file,
                           std::map<std::string, std::string>* metadata) {
  const std::string where = absl::StrCat(file, ": \"__metadata__\" (file byte ", value.offset, ")");
  if (value.kind != JsonValue::Kind::kObject) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": expected an object of strings, got ", JsonKindName(value.kind)));
  }
  for (const JsonMember& member : value.members) {
    if (member.value.kind != JsonValue::Kind::kString) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": value of ", Quote(member.key),
                                                     " is ", JsonKindName(member.value.kind),
                                                     ", expected a string"));
    }
    if (!metadata->emplace(member.key, member.value.text).second) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": duplicate key ", Quote(member.key)));
    }
  }
  return absl::OkStatus();
}

// One header entry "<name>": {"dtype": ..., "shape": [...], "data_offsets": [b, e]}, checked on
// its own and against the data section's size (`data_size` bytes).
template <typename Info>
absl::Status ParseTensorInfo(const JsonMember& member, const std::string& file, uint64_t data_size,
                             Info* info) {
  const JsonValue& value = member.value;
  const auto invalid = [&](absl::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat(file, ": tensor ", Quote(member.key),
                                                   " (file byte ", value.offset, "): ", what));
  };
  if (value.kind != JsonValue::Kind::kObject) {
    return invalid(absl::StrCat("expected an object {\"dtype\", \"shape\", \"data_offsets\"}, got ",
                                JsonKindName(value.kind)));
  }
  const JsonValue* dtype = nullptr;
  const JsonValue* shape = nullptr;
  const JsonValue* offsets = nullptr;
  for (const JsonMember& field : value.members) {
    const JsonValue** slot = field.key == "dtype"          ? &dtype
                             : field.key == "shape"        ? &shape
                             : field.key == "data_offsets" ? &offsets
                                                           : nullptr;
    if (slot == nullptr) {
      return invalid(absl::StrCat("unexpected key ", Quote(field.key),
                                  " (expected \"dtype\", \"shape\", \"data_offsets\")"));
    }
    if (*slot != nullptr) return invalid(absl::StrCat("duplicate key ", Quote(field.key)));
    *slot = &field.value;
  }
  if (dtype == nullptr) return invalid("missing \"dtype\"");
  if (shape == nullptr) return invalid("missing \"shape\"");
  if (offsets == nullptr) return invalid("missing \"data_offsets\"");

  if (dtype->kind != JsonValue::Kind::kString) {
    return invalid(absl::StrCat("\"dtype\" is ", JsonKindName(dtype->kind), ", expected a string"));
  }
  const DType* found = std::find_if(std::begin(kDTypes), std::end(kDTypes),
                                    [&](DType d) { return dtype->text == DTypeName(d); });
  if (found == std::end(kDTypes)) {
    const bool in_format = std::any_of(std::begin(kOtherFormatDTypes), std::end(kOtherFormatDTypes),
                                       [&](const char* name) { return dtype->text == name; });
    return invalid(absl::StrCat(in_format ? "dtype " : "unknown dtype ", Quote(dtype->text),
                                in_format ? " is not supported by sinklab (" : " (",
                                kSupportedDTypes, ")"));
  }
  info->dtype = *found;

  if (shape->kind != JsonValue::Kind::kArray) {
    return invalid(absl::StrCat("\"shape\" is ", JsonKindName(shape->kind), ", expected an array"));
  }
  for (size_t i = 0; i < shape->items.size(); ++i) {
    uint64_t dim;
    if (!shape->items[i].AsUint64(&dim)) {
      return invalid(absl::StrCat("shape[", i, "] is ", shape->items[i].DescribeNotUint64(),
                                  ", expected a non-negative integer"));
    }
    if (dim > static_cast<uint64_t>(INT64_MAX)) {
      return invalid(absl::StrCat("shape[", i, "] = ", dim, " is not below 2^63"));
    }
    info->shape.push_back(static_cast<int64_t>(dim));
  }

  if (offsets->kind != JsonValue::Kind::kArray || offsets->items.size() != 2) {
    return invalid(absl::StrCat("\"data_offsets\" is ", JsonKindName(offsets->kind),
                                offsets->kind == JsonValue::Kind::kArray
                                    ? absl::StrCat(" of ", offsets->items.size(), " items")
                                    : "",
                                ", expected an array [begin, end]"));
  }
  for (int i = 0; i < 2; ++i) {
    if (!offsets->items[i].AsUint64(i == 0 ? &info->begin : &info->end)) {
      return invalid(absl::StrCat("data_offsets[", i, "] is ",
                                  offsets->items[i].DescribeNotUint64(),
                                  ", expected a non-negative integer"));
    }
  }
  const std::string offsets_text =
      absl::StrCat("data_offsets [", info->begin, ", ", info->end, "]");
  if (info->begin > info->end) return invalid(absl::StrCat(offsets_text, ": begin > end"));

  uint64_t nbytes;
  if (!CheckedByteSize(info->shape, info->dtype, &nbytes)) {
    return invalid(absl::StrCat("shape ", ShapeString(info->shape), " of ", DTypeName(info->dtype),
                                " has more bytes than 2^64 - 1"));
  }
  if (info->end - info->begin != nbytes) {
    return invalid(absl::StrCat(offsets_text, " hold ", info->end - info->begin,
                                " bytes, but shape ", ShapeString(info->shape), " of ",
                                DTypeName(info->dtype), " needs ", nbytes));
  }
  if (info->end > data_size) {
    return absl::DataLossError(absl::StrCat(file, ": tensor ", Quote(member.key), ": ",
                                            offsets_text, " run past the end of the data section (",
                                            data_size, " bytes; file truncated?)"));
  }
  return absl::OkStatus();
}

// `infos` sorted by (begin, end) must tile [0, data_size) exactly: no gap, no overlap.
template <typename Info>
absl::Status CheckTiling(const std::vector<Info>& infos, uint64_t data_size,
                         const std::string& file) {
  uint64_t covered = 0;
  for (size_t i = 0; i < infos.size(); ++i) {
    const Info& info = infos[i];
    if (info.begin < covered) {
      const Info& previous = infos[i - 1];
      return absl::InvalidArgumentError(
          absl::StrCat(file, ": tensor ", Quote(info.name), " data_offsets [", info.begin, ", ",
                       info.end, "] overlap tensor ", Quote(previous.name), " [", previous.begin,
                       ", ", previous.end, "]"));
    }
    if (info.begin > covered) {
      return absl::InvalidArgumentError(absl::StrCat(
          file, ": gap of ", info.begin - covered, " bytes in the data section before tensor ",
          Quote(info.name), " (it begins at ", info.begin, ", ",
          i == 0 ? "the first tensor must begin at 0"
                 : absl::StrCat("tensor ", Quote(infos[i - 1].name), " ends at ", covered),
          ")"));
    }
    covered = info.end;
  }
  if (covered != data_size) {
    return absl::InvalidArgumentError(
        absl::StrCat(file, ": the data section is ", data_size, " bytes but the tensors cover ",
                     covered, " (", data_size - covered, " trailing bytes belong to no tensor)"));
  }
  return absl::OkStatus();
}

// ---- Writing -----------------------------------------------------------------------------

// The padded JSON header for `tensors` + `metadata`, after checking every entry.
absl::StatusOr<std::string> BuildHeader(const std::string& path,
                                        const std::vector<SafetensorsEntry>& tensors,
                                        const std::map<std::string, std::string>& metadata) {
  std::string json = "{";
  if (!metadata.empty()) {
    json += "\"__metadata__\":{";
    for (const auto& [key, value] : metadata) {
      if (!IsValidUtf8(key) || !IsValidUtf8(value)) {
        return absl::InvalidArgumentError(
            absl::StrCat(path, ": metadata entry ", Quote(key), " is not valid UTF-8"));
      }
      absl::StrAppend(&json, json.back() == '{' ? "" : ",", JsonEscape(key), ":",
                      JsonEscape(value));
    }
    json += "}";
  }
  std::set<absl::string_view> names;
  uint64_t offset = 0;
  for (const SafetensorsEntry& tensor : tensors) {
    const auto invalid = [&](absl::string_view what) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": cannot write tensor ", Quote(tensor.name), ": ", what));
    };
    if (!IsValidUtf8(tensor.name)) return invalid("the name is not valid UTF-8");
    if (tensor.name == "__metadata__") return invalid("the name is reserved for metadata");
    if (!names.insert(tensor.name).second) return invalid("duplicate name");
    if (std::any_of(tensor.shape.begin(), tensor.shape.end(), [](int64_t d) { return d < 0; })) {
      return invalid(absl::StrCat("negative dimension in shape ", ShapeString(tensor.shape)));
    }
    uint64_t nbytes;
    if (!CheckedByteSize(tensor.shape, tensor.dtype, &nbytes) || nbytes != tensor.nbytes) {
      return invalid(absl::StrCat("nbytes ", tensor.nbytes, " does not match shape ",
                                  ShapeString(tensor.shape), " of ", DTypeName(tensor.dtype)));
    }
    if (tensor.data == nullptr && nbytes > 0) return invalid("data is null");
    absl::StrAppend(&json, json.size() > 1 ? "," : "", JsonEscape(tensor.name), ":{\"dtype\":\"",
                    DTypeName(tensor.dtype), "\",\"shape\":[", absl::StrJoin(tensor.shape, ","),
                    "],\"data_offsets\":[", offset, ",", offset + nbytes, "]}");
    offset += nbytes;
  }
  json += "}";
  json.append((8 - json.size() % 8) % 8, ' ');  // the reference pads to a multiple of 8
  if (json.size() > kMaxHeaderBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": header of ", json.size(), " bytes exceeds the 100000000-byte limit"));
  }
  return json;
}

// The `.tmp` file being written: closed and removed on destruction unless Commit() succeeded.
class TempFile {
 public:
  explicit TempFile(std::string path) : path_(std::move(path)) {}
  ~TempFile() {
    if (fd_ >= 0) ::close(fd_);
    if (created_ && !committed_) ::unlink(path_.c_str());
  }

  absl::Status Open() {
    fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0) return Error("cannot create");
    created_ = true;
    return absl::OkStatus();
  }

  absl::Status Write(const void* data, size_t size) {
    const char* bytes = static_cast<const char*>(data);
    while (size > 0) {
      const ssize_t n = ::write(fd_, bytes, size);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return Error(n == 0 ? EIO : errno, "write failed");
      bytes += n;
      size -= static_cast<size_t>(n);
    }
    return absl::OkStatus();
  }

  // fsync, close, rename over `target`, fsync the directory.
  absl::Status Commit(const std::string& target) {
    if (::fsync(fd_) != 0) return Error("fsync failed");
    const int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) return Error("close failed");
    if (std::rename(path_.c_str(), target.c_str()) != 0) {
      return absl::ErrnoToStatus(errno,
                                 absl::StrCat(target, ": cannot rename ", path_, " over it"));
    }
    committed_ = true;
    const size_t slash = target.rfind('/');
    const std::string dir = slash == std::string::npos ? "."
                            : slash == 0               ? "/"
                                                       : target.substr(0, slash);
    const int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd < 0 || ::fsync(dir_fd) != 0) {
      const int error = errno;
      if (dir_fd >= 0) ::close(dir_fd);
      return absl::ErrnoToStatus(
          error, absl::StrCat(target, ": written, but fsync of its directory ", dir, " failed"));
    }
    ::close(dir_fd);
    return absl::OkStatus();
  }

 private:
  // "<tmp path>: <what>: <strerror>", with the status code that matches the errno.
  absl::Status Error(absl::string_view what) const { return Error(errno, what); }
  absl::Status Error(int error, absl::string_view what) const {
    return absl::ErrnoToStatus(error, absl::StrCat(path_, ": ", what));
  }

  std::string path_;
  int fd_ = -1;
  bool created_ = false;    // by us: only then is it ours to remove
  bool committed_ = false;  // renamed to the target
};

}  // namespace

absl::Status WriteSafetensors(const std::string& path, const std::vector<SafetensorsEntry>& tensors,
                              const std::map<std::string, std::string>& metadata) {
  SL_ASSIGN_OR_RETURN(const std::string header, BuildHeader(path, tensors, metadata));
  TempFile file(path + ".tmp");
  SL_RETURN_IF_ERROR(file.Open());
  const std::string length = StoreLittleEndian64(header.size());
  SL_RETURN_IF_ERROR(file.Write(length.data(), length.size()));
  SL_RETURN_IF_ERROR(file.Write(header.data(), header.size()));
  for (const SafetensorsEntry& tensor : tensors) {
    SL_RETURN_IF_ERROR(file.Write(tensor.data, tensor.nbytes));
  }
  return file.Commit(path);
}

absl::StatusOr<SafetensorsFile> SafetensorsFile::Read(const std::string& path) {
  std::error_code error;
  if (std::filesystem::is_directory(path, error)) {  // e.g. a checkpoint's folder
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": is a directory, expected a .safetensors file"));
  }
  SL_ASSIGN_OR_RETURN(std::string bytes, ReadFileToString(path));
  return Parse(std::move(bytes), path);
}

absl::StatusOr<SafetensorsFile> SafetensorsFile::Parse(std::string bytes, const std::string& name) {
  if (bytes.size() < kLengthBytes) {
    return absl::DataLossError(absl::StrCat(name, ": file is ", bytes.size(),
                                            " bytes, shorter than the 8-byte header length"));
  }
  const uint64_t header_length = LoadLittleEndian64(bytes.data());
  if (header_length > kMaxHeaderBytes) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": header length ", header_length,
                                                   " exceeds the 100000000-byte limit (not a "
                                                   "safetensors file, or a corrupt one)"));
  }
  if (header_length > bytes.size() - kLengthBytes) {
    return absl::DataLossError(absl::StrCat(
        name, ": header length ", header_length, " runs past the end of the file (", bytes.size(),
        " bytes: at most ", bytes.size() - kLengthBytes, " header bytes; truncated?)"));
  }
  const absl::string_view header(bytes.data() + kLengthBytes, header_length);
  const absl::StatusOr<JsonValue> json = ParseJson(header, kLengthBytes);
  if (!json.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ": invalid JSON header at file ", json.status().message()));
  }
  if (json->kind != JsonValue::Kind::kObject) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ": header is ", JsonKindName(json->kind), ", expected a JSON object"));
  }

  SafetensorsFile file;
  file.name_ = name;
  const uint64_t data_start = kLengthBytes + header_length;
  const uint64_t data_size = bytes.size() - data_start;
  bool saw_metadata = false;
  for (const JsonMember& member : json->members) {
    if (member.key == "__metadata__") {
      if (saw_metadata) {
        return absl::InvalidArgumentError(absl::StrCat(name, ": duplicate \"__metadata__\""));
      }
      saw_metadata = true;
      SL_RETURN_IF_ERROR(ParseMetadata(member.value, name, &file.metadata_));
      continue;
    }
    if (!file.index_.emplace(member.key, 0).second) {
      return absl::InvalidArgumentError(absl::StrCat(name, ": duplicate tensor name ",
                                                     Quote(member.key), " (file byte ",
                                                     member.value.offset, ")"));
    }
    Info info;
    info.name = member.key;
    SL_RETURN_IF_ERROR(ParseTensorInfo(member, name, data_size, &info));
    file.infos_.push_back(std::move(info));
  }
  std::stable_sort(file.infos_.begin(), file.infos_.end(), [](const Info& a, const Info& b) {
    return std::make_pair(a.begin, a.end) < std::make_pair(b.begin, b.end);
  });
  SL_RETURN_IF_ERROR(CheckTiling(file.infos_, data_size, name));
  for (size_t i = 0; i < file.infos_.size(); ++i) file.index_[file.infos_[i].name] = i;

  file.bytes_ = std::move(bytes);
  file.data_start_ = data_start;
  if (reinterpret_cast<uintptr_t>(file.bytes_.data() + data_start) % 8 != 0) {
    // The header length is not a multiple of 8 (another writer): copy the data section to a
    // fresh allocation (operator new memory is at least 16-byte aligned) so that F32 tensors
    // can be read in place.
    file.bytes_ = file.bytes_.substr(data_start);
    file.data_start_ = 0;
  }
  return file;
}

std::vector<std::string> SafetensorsFile::names() const {
  std::vector<std::string> names;
  names.reserve(infos_.size());
  for (const Info& info : infos_) names.push_back(info.name);
  return names;
}

absl::StatusOr<SafetensorsEntry> SafetensorsFile::Get(const std::string& name) const {
  const auto it = index_.find(name);
  if (it == index_.end()) {
    std::vector<std::string> some;
    for (size_t i = 0; i < infos_.size() && i < 5; ++i) some.push_back(Quote(infos_[i].name));
    return absl::NotFoundError(absl::StrCat(
        name_, ": no tensor named ", Quote(name), " (the file holds ", infos_.size(), " tensors",
        some.empty() ? ""
                     : absl::StrCat(": ", absl::StrJoin(some, ", "),
                                    infos_.size() > some.size() ? ", ..." : ""),
        ")"));
  }
  const Info& info = infos_[it->second];
  return SafetensorsEntry{info.name, info.dtype, info.shape,
                          bytes_.data() + data_start_ + info.begin,
                          static_cast<size_t>(info.end - info.begin)};
}

}  // namespace sinklab

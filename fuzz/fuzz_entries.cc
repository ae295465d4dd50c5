#include "fuzz/fuzz_entries.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "configs/config_loader.h"
#include "configs/config_source.h"
#include "configs/validate.h"
#include "core/crc32c.h"
#include "core/dtype.h"
#include "core/safetensors.h"
#include "core/status.h"
#include "core/tensorboard.pb.h"
#include "core/tfrecord.h"
#include "data/byte_tokenizer.h"
#include "data/shard.h"

namespace sinklab {
namespace {

absl::string_view AsView(const uint8_t* data, size_t size) {
  return absl::string_view(reinterpret_cast<const char*>(data), size);
}

}  // namespace

absl::Status FuzzConfigText(const uint8_t* data, size_t size) {
  const std::string text(AsView(data, size));
  Config config;
  ConfigSource source;
  SL_RETURN_IF_ERROR(ParseConfigText(text, "fuzz.textproto", &config, &source));
  return ValidateConfig(config, source);
}

absl::Status FuzzShardHeader(const uint8_t* data, size_t size) {
  ShardHeader header;
  const size_t header_size = size < kShardHeaderBytes ? size : kShardHeaderBytes;
  SL_RETURN_IF_ERROR(ParseShardHeader(data, header_size, size, &header));
  SL_CHECK(header.num_tokens >= 0);
  SL_CHECK(kShardHeaderBytes +
               static_cast<uint64_t>(header.num_tokens) * TokenBytes(header.width) ==
           size);
  return absl::OkStatus();
}

absl::Status FuzzSafetensors(const uint8_t* data, size_t size) {
  SL_ASSIGN_OR_RETURN(const SafetensorsFile file,
                      SafetensorsFile::Parse(std::string(AsView(data, size)), "fuzz.safetensors"));
  for (const std::string& name : file.names()) {
    const absl::StatusOr<SafetensorsEntry> entry = file.Get(name);
    SL_CHECK_OK(entry.status());
    uint64_t elements = 1;
    for (const int64_t dim : entry->shape) {
      SL_CHECK(dim >= 0);
      elements *= static_cast<uint64_t>(dim);
    }
    SL_CHECK(entry->nbytes == elements * DTypeSize(entry->dtype));
    // Touch every byte: ASan reports a view that reaches outside the parsed buffer.
    const uint8_t* bytes = static_cast<const uint8_t*>(entry->data);
    uint8_t checksum = 0;
    for (size_t i = 0; i < entry->nbytes; ++i) checksum ^= bytes[i];
    volatile uint8_t sink = checksum;
    (void)sink;
  }
  return absl::OkStatus();
}

absl::Status FuzzByteTokenizer(const uint8_t* data, size_t size) {
  const absl::string_view input = AsView(data, size);
  SL_CHECK(ByteTokenizer::Decode(ByteTokenizer::Encode(input)) == input);
  if (size == 0) return absl::OkStatus();
  const bool bos = (data[0] & 1) != 0;
  const size_t separator_size = std::min<size_t>((data[0] >> 1) & 3, size - 1);
  const absl::string_view separator = input.substr(1, separator_size);
  const absl::string_view text = input.substr(1 + separator_size);

  std::vector<uint32_t> tokens = {7};  // appends after what is already there
  const int64_t documents = ByteTokenizer::AppendDocuments(text, separator, bos, &tokens);
  SL_CHECK(tokens[0] == 7);
  int64_t bos_count = 0;
  for (size_t i = 1; i < tokens.size(); ++i) bos_count += tokens[i] == kBosToken ? 1 : 0;
  SL_CHECK(bos_count == (bos ? documents : 0));
  // Without markers the tokens decode to the text with every separator removed.
  const std::string expected =
      separator.empty() ? std::string(text) : absl::StrReplaceAll(text, {{separator, ""}});
  const std::string decoded = ByteTokenizer::Decode(absl::MakeConstSpan(tokens).subspan(1));
  SL_CHECK_MSG(decoded == expected,
               absl::StrCat("decoded ", decoded.size(), " bytes, expected ", expected.size()));
  // Decode of arbitrary ids (the input read as uint32s): 1 byte per byte id, the marker per
  // BOS, 3 bytes (U+FFFD) per id above BOS.
  std::vector<uint32_t> ids(size / 4);
  size_t expected_size = 0;
  for (size_t i = 0; i < ids.size(); ++i) {
    std::memcpy(&ids[i], data + 4 * i, 4);
    expected_size += ids[i] < kBosToken ? 1 : (ids[i] == kBosToken ? 5 : 3);
  }
  SL_CHECK(ByteTokenizer::Decode(ids, "<bos>").size() == expected_size);
  return absl::OkStatus();
}

absl::Status FuzzTfRecords(const uint8_t* data, size_t size) {
  const absl::string_view bytes = AsView(data, size);
  // The fast CRC path (SSE4.2 when compiled for it) must agree with the table on any bytes.
  SL_CHECK(Crc32c(data, size) == Crc32cExtendPortable(0, data, size));
  SL_ASSIGN_OR_RETURN(const std::vector<std::string> records,
                      ParseTfRecords(bytes, "fuzz.tfevents"));
  std::string reframed;
  for (const std::string& record : records) AppendTfRecord(record, &reframed);
  SL_CHECK(reframed == bytes);
  for (size_t i = 0; i < records.size(); ++i) {
    tb::Event event;
    if (!event.ParseFromString(records[i])) {
      return absl::DataLossError(absl::StrCat("fuzz.tfevents: record ", i, " is not an Event"));
    }
  }
  return absl::OkStatus();
}

const std::vector<FuzzTarget>& FuzzTargets() {
  static const std::vector<FuzzTarget>* const targets = new std::vector<FuzzTarget>{
      {"config_text", &FuzzConfigText},  {"shard_header", &FuzzShardHeader},
      {"safetensors", &FuzzSafetensors}, {"byte_tokenizer", &FuzzByteTokenizer},
      {"tfrecord", &FuzzTfRecords},
  };
  return *targets;
}

}  // namespace sinklab

// The bodies of sinklab's fuzz targets, one per parser of untrusted bytes. Each libFuzzer
// binary (fuzz/fuzzer_main.cc) calls one of these, and tests/fuzz/corpus_replay_test.cc feeds
// every seed of fuzz/corpus/<name>/ through the same function in the normal build.
//
// Contract of every entry: any byte string is a legal input; it returns the parser's verdict
// (OK = the input was accepted) and aborts (SL_CHECK) only when a property that must hold for
// every input is broken (e.g. an accepted TFRecord file does not re-frame to the same bytes).
#ifndef SINKLAB_FUZZ_FUZZ_ENTRIES_H_
#define SINKLAB_FUZZ_FUZZ_ENTRIES_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/status/status.h"

namespace sinklab {

// Text-format Config: ParseConfigText, then (if it parsed) ValidateConfig.
absl::Status FuzzConfigText(const uint8_t* data, size_t size);
// The input is a whole token shard file: ParseShardHeader on its first min(size, 1024) bytes
// with file_size = size.
absl::Status FuzzShardHeader(const uint8_t* data, size_t size);
// The input is a whole safetensors file: SafetensorsFile::Parse, then every tensor's bytes
// are read (ASan checks they lie inside the buffer).
absl::Status FuzzSafetensors(const uint8_t* data, size_t size);
// ByteTokenizer: Decode(Encode(text)) == text, and AppendDocuments with a separator and BOS
// flag taken from the input (byte 0: bit 0 = BOS, bits 1-2 = separator length k; bytes
// [1, 1 + k) = separator; the rest = text). Always OK; the checks are the properties.
absl::Status FuzzByteTokenizer(const uint8_t* data, size_t size);
// The input is a TensorBoard event file: ParseTfRecords, then each record as a tb::Event;
// also checks that Crc32c and Crc32cExtendPortable agree on the input.
absl::Status FuzzTfRecords(const uint8_t* data, size_t size);

using FuzzEntry = absl::Status (*)(const uint8_t* data, size_t size);

struct FuzzTarget {
  const char* name;  // the corpus folder fuzz/corpus/<name>/ and the binary fuzz_<name>
  FuzzEntry entry;
};

// All targets, in a fixed order.
const std::vector<FuzzTarget>& FuzzTargets();

}  // namespace sinklab

#endif  // SINKLAB_FUZZ_FUZZ_ENTRIES_H_

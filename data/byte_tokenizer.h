// Byte-level tokenizer: token ids 0..255 are the bytes of the UTF-8 text, id 256 is BOS
// (beginning of a document). No merges, no unknown tokens: every text round-trips exactly.
#ifndef SINKLAB_DATA_BYTE_TOKENIZER_H_
#define SINKLAB_DATA_BYTE_TOKENIZER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace sinklab {

inline constexpr uint32_t kBosToken = 256;
// Smallest model vocabulary for byte-level data: 256 bytes + BOS.
inline constexpr int kByteVocabSize = 257;

class ByteTokenizer {
 public:
  // One token per byte of `text`.
  static std::vector<uint32_t> Encode(absl::string_view text);
  // Appends one token per byte of `text` to `tokens`.
  static void AppendEncoded(absl::string_view text, std::vector<uint32_t>* tokens);

  // Splits `text` into documents on `separator` (the separator is dropped; empty means the
  // whole text is one document), skips empty documents, and appends each document's bytes to
  // `tokens`, preceded by kBosToken when `bos_at_doc_start`. Returns the documents appended.
  static int64_t AppendDocuments(absl::string_view text, absl::string_view separator,
                                 bool bos_at_doc_start, std::vector<uint32_t>* tokens);

  // Inverse of Encode: bytes back to text. kBosToken is rendered as `bos_marker` (nothing by
  // default, so Decode(Encode(s)) == s; pass e.g. "<|bos|>" to see document starts). Ids
  // above 256 (a model vocabulary padded past 257 can sample them) become U+FFFD.
  static std::string Decode(absl::Span<const uint32_t> tokens,
                            absl::string_view bos_marker = "");
};

}  // namespace sinklab

#endif  // SINKLAB_DATA_BYTE_TOKENIZER_H_

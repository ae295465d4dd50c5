#include "data/byte_tokenizer.h"

#include "absl/strings/str_split.h"

namespace sinklab {

std::vector<uint32_t> ByteTokenizer::Encode(absl::string_view text) {
  std::vector<uint32_t> tokens;
  AppendEncoded(text, &tokens);
  return tokens;
}

void ByteTokenizer::AppendEncoded(absl::string_view text, std::vector<uint32_t>* tokens) {
  tokens->reserve(tokens->size() + text.size());
  for (const char c : text) tokens->push_back(static_cast<unsigned char>(c));
}

int64_t ByteTokenizer::AppendDocuments(absl::string_view text, absl::string_view separator,
                                       bool bos_at_doc_start, std::vector<uint32_t>* tokens) {
  const auto append = [&](absl::string_view document) -> int64_t {
    if (document.empty()) return 0;
    if (bos_at_doc_start) tokens->push_back(kBosToken);
    AppendEncoded(document, tokens);
    return 1;
  };
  if (separator.empty()) return append(text);
  int64_t documents = 0;
  for (absl::string_view document : absl::StrSplit(text, separator)) documents += append(document);
  return documents;
}

std::string ByteTokenizer::Decode(absl::Span<const uint32_t> tokens,
                                  absl::string_view bos_marker) {
  static constexpr absl::string_view kReplacementCharacter = "\xEF\xBF\xBD";  // U+FFFD
  std::string text;
  text.reserve(tokens.size());
  for (const uint32_t token : tokens) {
    if (token < kBosToken) {
      text.push_back(static_cast<char>(token));
    } else if (token == kBosToken) {
      text.append(bos_marker.data(), bos_marker.size());
    } else {
      text.append(kReplacementCharacter.data(), kReplacementCharacter.size());
    }
  }
  return text;
}

}  // namespace sinklab

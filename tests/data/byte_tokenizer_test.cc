#include "data/byte_tokenizer.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace sinklab {
namespace {

TEST(ByteTokenizerTest, EncodesBytesAsIdsAndDecodesBackExactly) {
  const std::string text = std::string("Hi \xC3\xA9\n", 6) + std::string(1, '\0') + "\xFF";
  const std::vector<uint32_t> tokens = ByteTokenizer::Encode(text);
  EXPECT_EQ(tokens, (std::vector<uint32_t>{72, 105, 32, 0xC3, 0xA9, 10, 0, 255}));
  EXPECT_EQ(ByteTokenizer::Decode(tokens), text);
}

TEST(ByteTokenizerTest, RoundTripsWithBosRenderedAsNothingOrMarker) {
  std::vector<uint32_t> tokens;
  EXPECT_EQ(ByteTokenizer::AppendDocuments("ab||cd", "||", /*bos_at_doc_start=*/true, &tokens),
            2);
  EXPECT_EQ(tokens, (std::vector<uint32_t>{kBosToken, 'a', 'b', kBosToken, 'c', 'd'}));
  EXPECT_EQ(ByteTokenizer::Decode(tokens), "abcd");
  EXPECT_EQ(ByteTokenizer::Decode(tokens, "<|bos|>"), "<|bos|>ab<|bos|>cd");
  EXPECT_EQ(kByteVocabSize, 257);
}

TEST(ByteTokenizerTest, IdsAboveBosDecodeToReplacementCharacter) {
  EXPECT_EQ(ByteTokenizer::Decode({'a', 257, 300, 'b'}), "a\xEF\xBF\xBD\xEF\xBF\xBD" "b");
}

TEST(ByteTokenizerTest, DocumentsSkipEmptyOnesAndKeepNewlinesInside) {
  std::vector<uint32_t> tokens;
  const int64_t documents = ByteTokenizer::AppendDocuments("\n\n\na\nb\n\n\n\n\n\nc\n\n\n",
                                                           "\n\n\n", true, &tokens);
  EXPECT_EQ(documents, 2);
  EXPECT_EQ(tokens, (std::vector<uint32_t>{kBosToken, 'a', '\n', 'b', kBosToken, 'c'}));
}

TEST(ByteTokenizerTest, EmptySeparatorMakesOneDocumentAndBosIsOptional) {
  std::vector<uint32_t> with_bos, without_bos;
  EXPECT_EQ(ByteTokenizer::AppendDocuments("x\n\n\ny", "", true, &with_bos), 1);
  EXPECT_EQ(with_bos, (std::vector<uint32_t>{kBosToken, 'x', '\n', '\n', '\n', 'y'}));
  EXPECT_EQ(ByteTokenizer::AppendDocuments("x\n\n\ny", "\n\n\n", false, &without_bos), 2);
  EXPECT_EQ(without_bos, (std::vector<uint32_t>{'x', 'y'}));
}

}  // namespace
}  // namespace sinklab

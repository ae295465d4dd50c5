// The bundled corpus (data/corpus/kjv.txt, see data/corpus/SOURCE.md) exists, is small plain
// text made of whole books, and loads with the default DataConfig.
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/file_util.h"
#include "data/byte_tokenizer.h"
#include "data/token_source.h"
#include "gtest/gtest.h"

namespace sinklab {
namespace {

std::string RepoPath(const std::string& relative) {
  const char* root = std::getenv("SINKLAB_ROOT");
  return root ? absl::StrCat(root, "/", relative) : relative;
}

TEST(CorpusTest, BundledCorpusIsSmallAsciiTextOfWholeBooks) {
  const absl::StatusOr<std::string> text = ReadFileToString(RepoPath("data/corpus/kjv.txt"));
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_GT(text->size(), 1000000u);
  EXPECT_LE(text->size(), 2000000u);
  for (const char c : *text) {
    ASSERT_TRUE(c == '\n' || (c >= ' ' && c <= '~')) << "byte " << static_cast<int>(c);
  }
  const std::vector<std::string> books = absl::StrSplit(*text, "\n\n\n");
  ASSERT_GE(books.size(), 10u);
  EXPECT_EQ(books.front().substr(0, 63),
            "Genesis\n\nIn the beginning God created the heaven and the earth.");
  for (const std::string& book : books) {
    EXPECT_NE(book.front(), '\n');  // no run of more than 3 newlines between books
  }
  EXPECT_TRUE(ReadFileToString(RepoPath("data/corpus/SOURCE.md")).ok());
}

TEST(CorpusTest, DefaultDataConfigLoadsTheCorpusWithOneBosPerBook) {
  DataConfig cfg;
  EXPECT_EQ(cfg.text_corpus(), "data/corpus/kjv.txt");
  cfg.set_text_corpus(RepoPath(cfg.text_corpus()));
  const absl::StatusOr<TokenSplits> splits = LoadTokens(cfg);
  ASSERT_TRUE(splits.ok()) << splits.status();
  const std::string text = *ReadFileToString(cfg.text_corpus());
  const int64_t books = static_cast<int64_t>(
      std::vector<std::string>(absl::StrSplit(text, "\n\n\n")).size());
  int64_t bos = 0;
  for (const uint32_t t : splits->train) bos += (t == kBosToken);
  for (const uint32_t t : splits->val) bos += (t == kBosToken);
  EXPECT_EQ(bos, books);
  const size_t total = splits->train.size() + splits->val.size();
  EXPECT_EQ(total, text.size() - 3 * (books - 1) + books);  // separators out, BOS in
  EXPECT_NEAR(static_cast<double>(splits->val.size()) / total, 0.05, 1e-6);
}

}  // namespace
}  // namespace sinklab

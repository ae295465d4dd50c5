#include "data/vocab_check.h"

#include <vector>

#include "absl/strings/str_cat.h"

namespace sinklab {
namespace {

absl::Status CheckSplit(const std::vector<uint32_t>& tokens, const std::string& split,
                        const std::string& source, int vocab_size) {
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i] >= static_cast<uint32_t>(vocab_size)) {
      return absl::InvalidArgumentError(absl::StrCat(
          source, ": ", split, " token ", i, " has id ", tokens[i],
          ", but model.vocab_size is ", vocab_size, " (ids must be < vocab_size)"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckTokensFitVocab(const TokenSplits& tokens, int vocab_size) {
  const absl::Status train = CheckSplit(tokens.train, "train", tokens.train_source, vocab_size);
  if (!train.ok()) return train;
  return CheckSplit(tokens.val, "val", tokens.val_source, vocab_size);
}

}  // namespace sinklab

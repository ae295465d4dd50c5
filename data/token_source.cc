#include "data/token_source.h"

#include <glob.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/file_util.h"
#include "core/status.h"
#include "data/byte_tokenizer.h"
#include "data/shard.h"

namespace sinklab {
namespace {

// Errors unless `tokens` hold one sequence of seq_len inputs plus its last target.
absl::Status CheckHoldsOneSequence(const std::vector<uint32_t>& tokens, int seq_len,
                                   const std::string& split, const std::string& source) {
  if (tokens.size() >= static_cast<size_t>(seq_len) + 1) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "data: the ", split, " split (", source, ") has ", tokens.size(),
      " tokens, fewer than data.seq_len + 1 = ", seq_len + 1,
      " needed for one sequence; give more data or lower data.seq_len"));
}

}  // namespace

absl::StatusOr<std::vector<std::string>> ExpandGlob(const std::string& pattern,
                                                   const std::string& field) {
  glob_t matches;
  // Without GLOB_ERR, unreadable or missing directories simply match nothing.
  const int rc = ::glob(pattern.c_str(), 0, nullptr, &matches);
  std::vector<std::string> paths;
  if (rc == 0) paths.assign(matches.gl_pathv, matches.gl_pathv + matches.gl_pathc);
  ::globfree(&matches);
  if (rc == GLOB_NOMATCH || (rc == 0 && paths.empty())) {
    return absl::NotFoundError(
        absl::StrCat(field, ": pattern \"", pattern, "\" matches no file"));
  }
  if (rc != 0) {
    return absl::ResourceExhaustedError(
        absl::StrCat(field, ": cannot expand pattern \"", pattern, "\" (glob error ", rc, ")"));
  }
  std::sort(paths.begin(), paths.end());
  return paths;
}

absl::StatusOr<std::vector<uint32_t>> ReadShardGlob(const std::string& pattern,
                                                    const std::string& field) {
  SL_ASSIGN_OR_RETURN(const std::vector<std::string> paths, ExpandGlob(pattern, field));
  std::vector<uint32_t> tokens;
  for (const std::string& path : paths) {
    const absl::Status status = AppendShardTokens(path, &tokens);
    if (!status.ok()) return Annotate(status, field);
  }
  return tokens;
}

absl::StatusOr<TokenSplits> LoadTokens(const DataConfig& cfg) {
  if (!(cfg.val_fraction() >= 0.0f && cfg.val_fraction() <= 0.5f)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "data.val_fraction: ", cfg.val_fraction(), " is outside [0, 0.5]"));
  }
  if (cfg.seq_len() < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("data.seq_len: ", cfg.seq_len(), " must be at least 1"));
  }
  TokenSplits splits;
  if (!cfg.train_shards().empty()) {
    SL_ASSIGN_OR_RETURN(splits.train, ReadShardGlob(cfg.train_shards(), "data.train_shards"));
    splits.train_source = cfg.train_shards();
  } else if (!cfg.text_corpus().empty()) {
    const absl::StatusOr<std::string> text = ReadFileToString(cfg.text_corpus());
    if (!text.ok()) return Annotate(text.status(), "data.text_corpus");
    ByteTokenizer::AppendDocuments(*text, cfg.doc_separator(), cfg.bos_at_doc_start(),
                                   &splits.train);
    splits.train_source = cfg.text_corpus();
  } else {
    return absl::InvalidArgumentError(
        "data: neither train_shards nor text_corpus is set; name the training data");
  }
  if (!cfg.val_shards().empty()) {
    SL_ASSIGN_OR_RETURN(splits.val, ReadShardGlob(cfg.val_shards(), "data.val_shards"));
    splits.val_source = cfg.val_shards();
  } else {
    const size_t num_val = static_cast<size_t>(
        static_cast<double>(cfg.val_fraction()) * static_cast<double>(splits.train.size()));
    splits.val.assign(splits.train.end() - num_val, splits.train.end());
    splits.train.resize(splits.train.size() - num_val);
    splits.val_source = absl::StrFormat("the last %g%% of %s", 100.0 * cfg.val_fraction(),
                                        splits.train_source);
    splits.train_source = absl::StrFormat("the first %g%% of %s",
                                          100.0 * (1.0 - cfg.val_fraction()), splits.train_source);
  }
  SL_RETURN_IF_ERROR(CheckHoldsOneSequence(splits.train, cfg.seq_len(), "train",
                                           splits.train_source));
  if (!splits.val.empty()) {
    SL_RETURN_IF_ERROR(
        CheckHoldsOneSequence(splits.val, cfg.seq_len(), "val", splits.val_source));
  }
  return splits;
}

}  // namespace sinklab

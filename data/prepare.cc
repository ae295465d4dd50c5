#include "data/prepare.h"

#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/types/span.h"
#include "core/file_util.h"
#include "core/log.h"
#include "core/status.h"
#include "data/byte_tokenizer.h"
#include "data/shard.h"
#include "data/token_source.h"

namespace sinklab {
namespace {

std::string ShardPath(const PrepareOptions& options, const char* split, int index) {
  return absl::StrFormat("%s/%s_%s_%06d.bin", options.out_dir, options.prefix, split, index);
}

absl::Status CheckOptions(const PrepareOptions& options) {
  if (options.inputs.empty()) return absl::InvalidArgumentError("prepare: no input files");
  if (options.out_dir.empty()) return absl::InvalidArgumentError("prepare: out_dir is empty");
  if (options.prefix.empty() || options.prefix.find('/') != std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("prepare: prefix \"", options.prefix, "\" must be a non-empty file name"));
  }
  if (options.shard_tokens < 1 || options.shard_tokens > 2147483647) {
    return absl::InvalidArgumentError(absl::StrCat(
        "prepare: shard_tokens=", options.shard_tokens, " is outside [1, 2^31 - 1]"));
  }
  if (!(options.val_fraction >= 0.0 && options.val_fraction < 1.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("prepare: val_fraction=", options.val_fraction, " is outside [0, 1)"));
  }
  return absl::OkStatus();
}

// Removes (with `overwrite`) or refuses shards of the same prefix from an earlier run.
absl::Status ClearOldShards(const PrepareOptions& options) {
  for (const char* split : {"train", "val"}) {
    const std::string pattern =
        absl::StrFormat("%s/%s_%s_*.bin", options.out_dir, options.prefix, split);
    const absl::StatusOr<std::vector<std::string>> old = ExpandGlob(pattern, "prepare");
    if (absl::IsNotFound(old.status())) continue;  // nothing there
    SL_RETURN_IF_ERROR(old.status());
    if (!options.overwrite) {
      return absl::AlreadyExistsError(absl::StrCat(
          "prepare: ", old->front(), " already exists (", old->size(),
          " shards match ", pattern, "); remove them, pick another prefix, or overwrite"));
    }
    for (const std::string& path : *old) {
      if (std::remove(path.c_str()) != 0) {
        return absl::PermissionDeniedError(absl::StrCat(path, ": cannot remove old shard"));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<PrepareSummary> PrepareShards(const PrepareOptions& options) {
  SL_RETURN_IF_ERROR(CheckOptions(options));
  PrepareSummary summary;
  std::vector<uint32_t> tokens;
  for (const std::string& input : options.inputs) {
    SL_ASSIGN_OR_RETURN(const std::string text, ReadFileToString(input));
    summary.documents += ByteTokenizer::AppendDocuments(text, options.doc_separator,
                                                        options.bos_at_doc_start, &tokens);
  }
  if (tokens.empty()) return absl::InvalidArgumentError("prepare: the inputs hold no text");
  SL_RETURN_IF_ERROR(MakeDirs(options.out_dir));
  SL_RETURN_IF_ERROR(ClearOldShards(options));

  const absl::Span<const uint32_t> all(tokens);
  const size_t num_val = static_cast<size_t>(options.val_fraction * all.size());
  const absl::Span<const uint32_t> val =
      options.val_first ? all.subspan(0, num_val) : all.subspan(all.size() - num_val);
  const absl::Span<const uint32_t> train =
      options.val_first ? all.subspan(num_val) : all.subspan(0, all.size() - num_val);
  if (train.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "prepare: val_fraction=", options.val_fraction, " leaves no train tokens out of ",
        all.size()));
  }
  if (!val.empty()) {
    summary.val_shard = ShardPath(options, "val", 0);
    SL_RETURN_IF_ERROR(WriteShard(summary.val_shard, val, TokenWidth::kUint16));
  }
  for (size_t start = 0; start < train.size(); start += options.shard_tokens) {
    const std::string path =
        ShardPath(options, "train", static_cast<int>(summary.train_shards.size()));
    SL_RETURN_IF_ERROR(
        WriteShard(path, train.subspan(start, options.shard_tokens), TokenWidth::kUint16));
    summary.train_shards.push_back(path);
  }
  summary.train_tokens = static_cast<int64_t>(train.size());
  summary.val_tokens = static_cast<int64_t>(val.size());
  LogInfo(absl::StrFormat(
      "prepare: %d files, %d documents -> %d train tokens in %d shards (%s/%s_train_*.bin), "
      "%d val tokens%s",
      options.inputs.size(), summary.documents, summary.train_tokens,
      summary.train_shards.size(), options.out_dir, options.prefix, summary.val_tokens,
      summary.val_shard.empty() ? "" : absl::StrCat(" (", summary.val_shard, ")")));
  return summary;
}

}  // namespace sinklab

// Where the training and held-out tokens come from (DataConfig, configs/sinklab.proto):
// llm.c-format shards named by a glob, or a text file tokenized byte-level in memory.
#ifndef SINKLAB_DATA_TOKEN_SOURCE_H_
#define SINKLAB_DATA_TOKEN_SOURCE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "configs/sinklab.pb.h"

namespace sinklab {

struct TokenSplits {
  std::vector<uint32_t> train;
  // Empty only when no val shards are given and val_fraction is 0.
  std::vector<uint32_t> val;
  // Where each split came from, for logs, e.g. "data/shards/x_train_*.bin (3 shards)" or
  // "data/corpus/kjv.txt, last 5% held out".
  std::string train_source;
  std::string val_source;
};

// The files matching the glob `pattern`, sorted by name (byte order). No match is a
// NotFoundError naming `field` (e.g. "data.train_shards") and the pattern.
absl::StatusOr<std::vector<std::string>> ExpandGlob(const std::string& pattern,
                                                   const std::string& field);

// The tokens of every shard matching `pattern`, concatenated in name order.
absl::StatusOr<std::vector<uint32_t>> ReadShardGlob(const std::string& pattern,
                                                    const std::string& field);

// Loads the splits `cfg` describes:
//   train: the shards of cfg.train_shards(), or when that is empty the text file
//     cfg.text_corpus(), split into documents on cfg.doc_separator() (empty: one document),
//     BOS (id 256) before each document if cfg.bos_at_doc_start(), tokenized byte-level;
//   val: the shards of cfg.val_shards(), or when that is empty the last
//     floor(cfg.val_fraction() * n) of the n tokens above, removed from train.
// Checks val_fraction in [0, 0.5], and that train (and val, unless empty) hold at least
// seq_len + 1 tokens, one training sequence with its targets.
absl::StatusOr<TokenSplits> LoadTokens(const DataConfig& cfg);

}  // namespace sinklab

#endif  // SINKLAB_DATA_TOKEN_SOURCE_H_

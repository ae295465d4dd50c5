// `sinklab prepare`: text files -> byte-level uint16 token shards in llm.c's format
// (data/shard.h), ready for DataConfig.train_shards / val_shards.
#ifndef SINKLAB_DATA_PREPARE_H_
#define SINKLAB_DATA_PREPARE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace sinklab {

struct PrepareOptions {
  // UTF-8 text files, tokenized in this order. A file boundary is always a document boundary.
  std::vector<std::string> inputs;
  // Created if missing. Shards are <out_dir>/<prefix>_train_000000.bin, ... and
  // <out_dir>/<prefix>_val_000000.bin.
  std::string out_dir;
  std::string prefix = "corpus";
  // Most tokens per train shard (llm.c uses 10^8).
  int64_t shard_tokens = 100000000;
  // Prepend BOS (id 256) to each document.
  bool bos_at_doc_start = true;
  // Separator between documents inside a file (dropped); empty: each file is one document.
  std::string doc_separator;
  // Fraction of all tokens written to the val shard, in [0, 1); 0 writes no val shard.
  double val_fraction = 0.0;
  // Hold out the first val_fraction of the tokens (llm.c's convention) instead of the last.
  bool val_first = false;
  // Delete <prefix>_train_*.bin / <prefix>_val_*.bin already in out_dir; without it their
  // presence is an error (a stale shard would silently join the train glob).
  bool overwrite = false;
};

struct PrepareSummary {
  int64_t documents = 0;
  int64_t train_tokens = 0;
  int64_t val_tokens = 0;
  std::vector<std::string> train_shards;
  std::string val_shard;  // empty when val_fraction is 0
};

// Tokenizes options.inputs (all held in memory, 4 bytes per input byte) and writes the
// shards; logs and returns the counts. Errors name the option or file at fault.
absl::StatusOr<PrepareSummary> PrepareShards(const PrepareOptions& options);

}  // namespace sinklab

#endif  // SINKLAB_DATA_PREPARE_H_

// Checks that every token id of the loaded data is a valid row of the model's embedding.
#ifndef SINKLAB_DATA_VOCAB_CHECK_H_
#define SINKLAB_DATA_VOCAB_CHECK_H_

#include "absl/status/status.h"
#include "data/token_source.h"

namespace sinklab {

// InvalidArgument naming the split, its source, the first offending token index and id, and
// model.vocab_size, e.g. GPT-2 shards fed to a byte-level model.
absl::Status CheckTokensFitVocab(const TokenSplits& tokens, int vocab_size);

}  // namespace sinklab

#endif  // SINKLAB_DATA_VOCAB_CHECK_H_

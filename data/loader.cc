#include "data/loader.h"

#include <numeric>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/rng.h"
#include "core/status.h"

namespace sinklab {

Loader::Loader(const std::vector<uint32_t>* tokens, int seq_len, int global_batch,
               uint64_t seed, int rank, int world_size)
    : tokens_(tokens),
      seq_len_(seq_len),
      global_batch_(global_batch),
      seed_(seed),
      rank_(rank),
      world_size_(world_size) {
  SL_CHECK(tokens != nullptr);
  SL_CHECK_MSG(seq_len >= 1 && global_batch >= 1, absl::StrCat("seq_len=", seq_len,
                                                               " global_batch=", global_batch));
  SL_CHECK_MSG(world_size >= 1 && rank >= 0 && rank < world_size,
               absl::StrCat("rank=", rank, " world_size=", world_size));
  SL_CHECK_MSG(tokens->size() >= static_cast<size_t>(seq_len) + 1,
               absl::StrCat(tokens->size(), " tokens, seq_len=", seq_len,
                            " (LoadTokens checks this for user data)"));
  num_windows_ = static_cast<int64_t>((tokens->size() - 1) / seq_len);
}

void Loader::ShuffleForEpoch(int64_t epoch) {
  permutation_.resize(num_windows_);
  std::iota(permutation_.begin(), permutation_.end(), int64_t{0});
  // Fisher-Yates (Knuth, TAOCP vol. 2, Algorithm 3.4.2P): swap i with a uniform j in [0, i].
  Rng rng(seed_, kLoaderStreamBase + static_cast<uint64_t>(epoch));
  for (int64_t i = num_windows_ - 1; i > 0; --i) {
    const int64_t j = static_cast<int64_t>(rng.Below(static_cast<uint64_t>(i) + 1));
    std::swap(permutation_[i], permutation_[j]);
  }
  cached_epoch_ = epoch;
}

int64_t Loader::WindowOfSample(int64_t sample) {
  SL_CHECK_MSG(sample >= 0, absl::StrCat("sample=", sample));
  const int64_t epoch = sample / num_windows_;
  if (epoch != cached_epoch_) ShuffleForEpoch(epoch);
  return permutation_[sample % num_windows_];
}

void Loader::CopyWindow(int64_t window, int32_t* inputs_row, int32_t* targets_row) const {
  const uint32_t* start = tokens_->data() + window * seq_len_;
  for (int t = 0; t < seq_len_; ++t) {
    inputs_row[t] = static_cast<int32_t>(start[t]);
    targets_row[t] = static_cast<int32_t>(start[t + 1]);
  }
}

void Loader::GetBatch(int64_t step, int micro_step, int micro_batch, int32_t* inputs,
                      int32_t* targets) {
  const int64_t per_micro_step = static_cast<int64_t>(micro_batch) * world_size_;
  SL_CHECK_MSG(step >= 0 && micro_batch >= 1 && global_batch_ % per_micro_step == 0 &&
                   micro_step >= 0 && micro_step < global_batch_ / per_micro_step,
               absl::StrCat("step=", step, " micro_step=", micro_step, " micro_batch=",
                            micro_batch, " world_size=", world_size_,
                            " global_batch=", global_batch_));
  const int64_t first = step * global_batch_ +
                        (static_cast<int64_t>(micro_step) * world_size_ + rank_) * micro_batch;
  for (int i = 0; i < micro_batch; ++i) {
    CopyWindow(WindowOfSample(first + i), inputs + static_cast<int64_t>(i) * seq_len_,
               targets + static_cast<int64_t>(i) * seq_len_);
  }
}

void Loader::GetEvalBatch(int64_t batch_index, int micro_batch, int32_t* inputs,
                          int32_t* targets) const {
  SL_CHECK_MSG(batch_index >= 0 && micro_batch >= 1,
               absl::StrCat("batch_index=", batch_index, " micro_batch=", micro_batch));
  const int64_t first = (batch_index * world_size_ + rank_) * micro_batch;
  for (int i = 0; i < micro_batch; ++i) {
    CopyWindow((first + i) % num_windows_, inputs + static_cast<int64_t>(i) * seq_len_,
               targets + static_cast<int64_t>(i) * seq_len_);
  }
}

}  // namespace sinklab

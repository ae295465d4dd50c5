// Deterministic, rank-aware batches of training sequences, restartable at any step with no
// state but the step.
//
// The token stream is cut into windows of seq_len + 1 tokens starting at multiples of seq_len
// (window w = tokens[w*T, w*T + T], T = seq_len; inputs are its first T tokens, targets its
// last T), so there are floor((n - 1) / T) windows. Training visits them in epochs; epoch e is
// a Fisher-Yates permutation of the windows driven by Philox (core/rng.h), Rng(seed,
// kLoaderStreamBase + e), so global sample s is window Permutation(s / W)[s % W].
//
// Global sample index of row i of micro-batch `micro_step` on `rank`, at optimizer step `step`:
//   s = step * global_batch + (micro_step * world_size + rank) * micro_batch + i,
// with global_batch = world_size * accumulation * micro_batch sequences. A step therefore
// reads samples [step * G, (step + 1) * G) whatever the world size (1 rank x 4 accumulation
// and 4 ranks x 1 see the same sequences), and ranks' slices are disjoint.
#ifndef SINKLAB_DATA_LOADER_H_
#define SINKLAB_DATA_LOADER_H_

#include <cstdint>
#include <vector>

namespace sinklab {

// Philox stream of epoch e's permutation is kLoaderStreamBase + e ("data" in the high word),
// so data order never shares numbers with parameter init, which uses small streams.
inline constexpr uint64_t kLoaderStreamBase = uint64_t{0x64617461} << 32;

class Loader {
 public:
  // `tokens` (not owned; must outlive the loader) hold at least seq_len + 1 tokens.
  // global_batch: sequences per optimizer step over all ranks (TrainConfig.batch_size).
  Loader(const std::vector<uint32_t>* tokens, int seq_len, int global_batch, uint64_t seed,
         int rank, int world_size);

  // Fills inputs and targets, both [micro_batch, seq_len] row-major, with this rank's rows of
  // micro-batch `micro_step` of optimizer step `step` (sample indices above). micro_batch *
  // world_size must divide global_batch, and micro_step < global_batch / (micro_batch *
  // world_size). Computes an epoch's permutation only when the epoch changes.
  void GetBatch(int64_t step, int micro_step, int micro_batch, int32_t* inputs,
                int32_t* targets);

  // Held-out batches: windows in stream order (no shuffle), row i of batch `batch_index` on
  // this rank is window ((batch_index * world_size + rank) * micro_batch + i) mod W. Same
  // layout as GetBatch.
  void GetEvalBatch(int64_t batch_index, int micro_batch, int32_t* inputs,
                    int32_t* targets) const;

  // Window read by global sample `sample` (for tests and for logging what was seen).
  int64_t WindowOfSample(int64_t sample);

  int64_t num_windows() const { return num_windows_; }
  int seq_len() const { return seq_len_; }

 private:
  // Copies window `window` into one row of inputs and targets.
  void CopyWindow(int64_t window, int32_t* inputs_row, int32_t* targets_row) const;
  // Makes permutation_ that of `epoch`.
  void ShuffleForEpoch(int64_t epoch);

  const std::vector<uint32_t>* tokens_;
  int seq_len_;
  int global_batch_;
  uint64_t seed_;
  int rank_;
  int world_size_;
  int64_t num_windows_;
  int64_t cached_epoch_ = -1;
  std::vector<int64_t> permutation_;  // [num_windows_], window order of cached_epoch_
};

}  // namespace sinklab

#endif  // SINKLAB_DATA_LOADER_H_

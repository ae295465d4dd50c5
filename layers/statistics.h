// Sink and outlier statistics (DESIGN.md section 6): pure functions over host fp32 tensors,
// the CPU reference definitions. Sums are accumulated in double. The attention statistics
// come in two forms: from probs [B, H, S, K] (the reference) and from the per-query-row
// statistics row_stats [B, H, S, R] of Backend::AttentionRowStats (layers/backend.h,
// AttentionRowStat), which a GPU computes from the lse without a T x T matrix; each
// *FromRowStats function equals its probs version for row_stats of the same weights.
//
// Attention tensors follow layers/capture.h: probs [B, H, S, K] with S = P + T positions
// (P prefix sink tokens first, then the T data tokens) and K = bias_keys + S keys (key 0 is
// the KV-bias key when bias_keys = 1; key bias_keys + s is position s). Queries are the data
// tokens only (rows P .. P + T - 1); the data token t is row P + t and key bias_keys + P + t.
//
// Per-head results are std::vector<double> of B * H entries, index b * H + h: one value per
// sample and head, so callers can take per-sample indicators before averaging (Sink^eps).
#ifndef SINKLAB_LAYERS_STATISTICS_H_
#define SINKLAB_LAYERS_STATISTICS_H_

#include <cstdint>
#include <vector>

#include "core/tensor.h"
#include "layers/backend.h"  // AttentionRowStat

namespace sinklab {

// Where the real tokens sit in a probs tensor (see the top of this file).
struct AttentionLayout {
  int64_t prefix_tokens = 0;  // P
  int64_t bias_keys = 0;      // 0 or 1
};

// ---- Attention (probs [B, H, S, K] f32 on the host) -------------------------------------

// Gu et al. 2025 ("When Attention Sink Emerges in Language Models", sail-sg/Attention-Sink
// eval_sink_open_source.py, compute_attention_sink): the importance score of data key k in a
// window of the first T_w data tokens,
//   alpha_k = 1 / (T_w - k) * sum_{t=k}^{T_w-1} A[t, k]      (query t = k included),
// i.e. their (scores / arange(T_w, 0, -1)).sum(dim=-2). Rows >= T_w are not read. Because
// attention is causal, the top-left T_w x T_w block of a full-length forward equals the
// attention of a forward on the truncated sequence, so the window needs no second forward
// (this holds for every normalizer we have: sigmoid's bias b is a constant of the config,
// softpick's sums skip masked keys, the others normalize per row over causal keys).
// Requires 0 <= key < window <= T. Returns [B * H].
std::vector<double> KeyMass(const Tensor& probs, const AttentionLayout& layout, int64_t window,
                            int64_t key);

// First-token mass at full length: KeyMass(probs, layout, T, 0) = the mean over all T data
// queries of the weight on data token 0. [B * H].
std::vector<double> FirstTokenMass(const Tensor& probs, const AttentionLayout& layout);

// Fraction of `values` strictly above eps: the indicator [alpha > eps] per entry, then the
// mean (Gu et al. 2025 take it per (sample, layer, head), then average).
double FractionAbove(const std::vector<double>& values, double eps);

// Sink^eps of one layer (Gu et al. 2025): FractionAbove(KeyMass(probs, layout, window, 0),
// eps), the mean over (sample, head) of [alpha_0 > eps]. The mean over layers of this is the
// model's Sink^eps (every layer has the same B * H entries).
double SinkRatio(const Tensor& probs, const AttentionLayout& layout, int64_t window, double eps);

// Mass on the P prefix sink tokens (Xiao et al. 2023): mean over data queries t of
// sum_{j<P} A[P + t, bias_keys + j]. [B * H]; zeros when P = 0.
std::vector<double> PrefixMass(const Tensor& probs, const AttentionLayout& layout);

// Mass on the learned KV-bias key (Sun et al. 2024): mean over data queries of A[P + t, 0].
// Requires bias_keys = 1. [B * H].
std::vector<double> BiasKeyMass(const Tensor& probs, const AttentionLayout& layout);

// Virtual mass of softmax1 / sink-logit attention (Miller 2023; gpt-oss 2025): the weight the
// row's extra normalizer term absorbs, mean over data queries of 1 - sum_j A[P + t, j].
// [B * H]. Here and in AttentionEntropy the sums run over the causal keys of the row (bias
// key, prefix, data tokens <= t); later keys have weight 0 (layers/capture.h).
std::vector<double> VirtualMass(const Tensor& probs, const AttentionLayout& layout);

// Attention entropy in nats: mean over data queries of -sum_j A ln A over every key
// (prefix and bias keys included), with 0 ln 0 = 0. A row uniform over n keys gives ln n.
// [B * H].
std::vector<double> AttentionEntropy(const Tensor& probs, const AttentionLayout& layout);

// ---- Attention from row statistics (row_stats [B, H, S, kAttentionRowStatFields] f32 on
// the host, rows as probs', fields AttentionRowStat). [B * H] each, as above. -------------

// KeyMass(probs, layout, window, 0): the mean over data queries t < window of the weight on
// data token 0. Requires 1 <= window <= T.
std::vector<double> FirstKeyMassFromRowStats(const Tensor& row_stats, const AttentionLayout& layout,
                                             int64_t window);
// FirstTokenMass: FirstKeyMassFromRowStats over all T data queries.
std::vector<double> FirstTokenMassFromRowStats(const Tensor& row_stats,
                                               const AttentionLayout& layout);
// SinkRatio: FractionAbove(FirstKeyMassFromRowStats(row_stats, layout, window), eps).
double SinkRatioFromRowStats(const Tensor& row_stats, const AttentionLayout& layout,
                             int64_t window, double eps);
// PrefixMass, BiasKeyMass (requires bias_keys = 1), VirtualMass (1 - the row's total mass)
// and AttentionEntropy: the mean over data queries of the row's field.
std::vector<double> PrefixMassFromRowStats(const Tensor& row_stats, const AttentionLayout& layout);
std::vector<double> BiasKeyMassFromRowStats(const Tensor& row_stats,
                                            const AttentionLayout& layout);
std::vector<double> VirtualMassFromRowStats(const Tensor& row_stats,
                                            const AttentionLayout& layout);
std::vector<double> AttentionEntropyFromRowStats(const Tensor& row_stats,
                                                 const AttentionLayout& layout);

// ---- Residual stream and other activations (host f32) ------------------------------------

// One element of an activation tensor [B, S, D]: sample b (plus an offset, see
// TopAbsActivations), position s (counting prefix tokens: data token t is s = P + t),
// channel, and the signed value.
struct ActivationSite {
  int64_t sample = 0;
  int64_t position = 0;
  int64_t channel = 0;
  float value = 0;
};

// The `count` elements of h [B, S, D] with the largest |h|, largest first (ties: the earlier
// element first), samples numbered from `sample_offset`.
std::vector<ActivationSite> TopAbsActivations(const Tensor& h, int count,
                                              int64_t sample_offset = 0);

// Merges `more` into `top` (both largest |value| first) keeping the `count` largest; on ties
// `top`'s entries come first.
void MergeTopAbs(std::vector<ActivationSite>* top, const std::vector<ActivationSite>& more,
                 int count);

// Massive activations (Sun et al. 2024, "Massive Activations in Large Language Models": an
// activation is massive when |h| > 100 and about 1000x the median |h|).
struct MassiveActivationStats {
  std::vector<ActivationSite> top;  // top-3 |h|, largest first
  double median_abs = 0;            // median of |h| over all elements
  double top1_ratio = 0;            // |top[0].value| / median_abs
};
MassiveActivationStats MassiveActivations(const Tensor& h);

// Running count, mean and central moment sums M2..M4 of a stream of numbers, merged chunk by
// chunk with the pairwise update formulas of Pebay 2008 ("Formulas for robust, one-pass
// parallel computation of covariances and arbitrary-order statistical moments"), so a
// residual stream with a large mean loses no precision.
class MomentAccumulator {
 public:
  // Adds x[0 .. n) (two passes over the chunk in double, then one merge).
  void Add(const float* x, int64_t n);
  // Adds x[0 .. n) as consecutive chunks of `chunk` elements, whose sums are taken in
  // parallel (OpenMP) and merged in order: the result depends on `chunk`, not on the threads.
  void AddInChunks(const float* x, int64_t n, int64_t chunk);
  // Adds another accumulator's elements (the pairwise update).
  void Merge(const MomentAccumulator& other);
  int64_t count() const { return count_; }
  double mean() const { return mean_; }
  // E[(x - mu)^4] / sigma^4 - 3 with population moments (Bondarenko et al. 2023, "Quantizable
  // Transformers"): 0 for a normal distribution; NaN when empty or sigma = 0.
  double ExcessKurtosis() const;

 private:
  static MomentAccumulator OfChunk(const float* x, int64_t n);

  int64_t count_ = 0;
  double mean_ = 0, m2_ = 0, m3_ = 0, m4_ = 0;
};

// Excess kurtosis of all elements of x (f32, host): see MomentAccumulator.
double ExcessKurtosis(const Tensor& x);

// max |x| over all elements (f32, host); 0 when empty. The quantization-relevant outlier of
// a linear layer's input (Bondarenko et al. 2023).
double MaxAbs(const Tensor& x);

// Token-0 norm ratio ||x_0|| / mean_{t>0} ||x_t|| over the data tokens (x_t = position
// first_data_position + t), one per sample and group: x is [B, S, D] (one group, e.g. the
// residual stream h^l) or [B, S, G, d] (G groups, e.g. the values v per kv head). Requires
// at least two data positions. Returns [B * G], index b * G + g.
std::vector<double> TokenZeroNormRatio(const Tensor& x, int64_t first_data_position);

// Mean gate value sigmoid(X W_g) of each sample over the data positions (>= first_data_position)
// and all gate channels (Qiu et al. 2025, "Gated Attention"). gate [B, S, G]. Returns [B].
std::vector<double> GateMean(const Tensor& gate, int64_t first_data_position);

}  // namespace sinklab

#endif  // SINKLAB_LAYERS_STATISTICS_H_

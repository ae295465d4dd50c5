#include "layers/statistics.h"

#include <algorithm>
#include <cmath>
#include <iterator>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/median.h"

namespace sinklab {
namespace {

// The dimensions of a probs tensor [B, H, S, K] and its layout, checked once.
struct ProbsView {
  ProbsView(const Tensor& probs, const AttentionLayout& layout)
      : data(probs.f32()), prefix(layout.prefix_tokens), bias(layout.bias_keys) {
    SL_CHECK_MSG(probs.rank() == 4, absl::StrCat("probs must be [B, H, S, K], got ",
                                                 probs.ShapeString()));
    SL_CHECK(probs.device() == Device::kCpu);
    batch = probs.dim(0);
    heads = probs.dim(1);
    positions = probs.dim(2);
    keys = probs.dim(3);
    tokens = positions - prefix;
    SL_CHECK_MSG(prefix >= 0 && (bias == 0 || bias == 1) && tokens >= 1 &&
                     keys == bias + positions,
                 absl::StrCat("probs ", probs.ShapeString(), " with ", prefix,
                              " prefix tokens and ", bias, " bias keys"));
  }

  // Row of data query t (position P + t) of sample b, head h: K weights.
  const float* QueryRow(int64_t b, int64_t h, int64_t t) const {
    return data + ((b * heads + h) * positions + prefix + t) * keys;
  }
  // Key index of data token t.
  int64_t DataKey(int64_t t) const { return bias + prefix + t; }
  // Keys data query t may see (the bias key, the prefix, data tokens 0..t); the weights of
  // later keys are 0 (layers/capture.h), so the sums over a row skip them.
  int64_t CausalKeys(int64_t t) const { return DataKey(t) + 1; }

  const float* data;
  int64_t prefix, bias;
  int64_t batch = 0, heads = 0, positions = 0, keys = 0, tokens = 0;  // B, H, S, K, T
};

// Applies row_value(row, causal_keys) to every data query row of every (b, h) and returns
// the mean over the T queries, [B * H]. One thread per (b, h): deterministic.
template <typename RowValue>
std::vector<double> MeanOverQueries(const ProbsView& view, RowValue row_value) {
  std::vector<double> out(view.batch * view.heads);
#pragma omp parallel for schedule(static)
  for (int64_t bh = 0; bh < view.batch * view.heads; ++bh) {
    const int64_t b = bh / view.heads, h = bh % view.heads;
    double sum = 0;
    for (int64_t t = 0; t < view.tokens; ++t) {
      sum += row_value(view.QueryRow(b, h, t), view.CausalKeys(t));
    }
    out[bh] = sum / static_cast<double>(view.tokens);
  }
  return out;
}

// The dimensions of row_stats [B, H, S, R] and its layout, checked once.
struct RowStatsView {
  RowStatsView(const Tensor& row_stats, const AttentionLayout& layout)
      : data(row_stats.f32()), prefix(layout.prefix_tokens), bias(layout.bias_keys) {
    SL_CHECK_MSG(row_stats.rank() == 4 && row_stats.dim(3) == kAttentionRowStatFields,
                 absl::StrCat("row_stats must be [B, H, S, ", kAttentionRowStatFields,
                              "], got ", row_stats.ShapeString()));
    SL_CHECK(row_stats.device() == Device::kCpu);
    batch = row_stats.dim(0);
    heads = row_stats.dim(1);
    positions = row_stats.dim(2);
    tokens = positions - prefix;
    SL_CHECK_MSG(prefix >= 0 && (bias == 0 || bias == 1) && tokens >= 1,
                 absl::StrCat("row_stats ", row_stats.ShapeString(), " with ", prefix,
                              " prefix tokens and ", bias, " bias keys"));
  }
  // Field f of data query t (position P + t) of sample b, head h.
  double At(int64_t b, int64_t h, int64_t t, AttentionRowStat f) const {
    return data[((b * heads + h) * positions + prefix + t) * kAttentionRowStatFields + f];
  }
  // The mean over data queries t < rows of row_value(b, h, t), [B * H].
  template <typename RowValue>
  std::vector<double> MeanOverQueries(int64_t rows, RowValue row_value) const {
    std::vector<double> out(batch * heads);
    for (int64_t b = 0; b < batch; ++b) {
      for (int64_t h = 0; h < heads; ++h) {
        double sum = 0;
        for (int64_t t = 0; t < rows; ++t) sum += row_value(b, h, t);
        out[b * heads + h] = sum / static_cast<double>(rows);
      }
    }
    return out;
  }
  // The mean over all data queries of field f.
  std::vector<double> MeanOfField(AttentionRowStat f) const {
    return MeanOverQueries(tokens, [&](int64_t b, int64_t h, int64_t t) { return At(b, h, t, f); });
  }

  const float* data;
  int64_t prefix, bias;
  int64_t batch = 0, heads = 0, positions = 0, tokens = 0;  // B, H, S, T
};

bool AbsGreater(const ActivationSite& a, const ActivationSite& b) {
  return std::fabs(a.value) > std::fabs(b.value);
}

}  // namespace

std::vector<double> KeyMass(const Tensor& probs, const AttentionLayout& layout, int64_t window,
                            int64_t key) {
  const ProbsView view(probs, layout);
  SL_CHECK_MSG(0 <= key && key < window && window <= view.tokens,
               absl::StrCat("key ", key, " window ", window, " data tokens ", view.tokens));
  std::vector<double> out(view.batch * view.heads);
  for (int64_t b = 0; b < view.batch; ++b) {
    for (int64_t h = 0; h < view.heads; ++h) {
      double sum = 0;
      // Gu et al. 2025: sum over queries t = k .. T_w - 1 (rows above k are 0 by causality).
      for (int64_t t = key; t < window; ++t) sum += view.QueryRow(b, h, t)[view.DataKey(key)];
      out[b * view.heads + h] = sum / static_cast<double>(window - key);  // / (T_w - k)
    }
  }
  return out;
}

std::vector<double> FirstTokenMass(const Tensor& probs, const AttentionLayout& layout) {
  return KeyMass(probs, layout, probs.dim(2) - layout.prefix_tokens, 0);
}

double FractionAbove(const std::vector<double>& values, double eps) {
  if (values.empty()) return std::numeric_limits<double>::quiet_NaN();
  int64_t above = 0;
  for (const double v : values) above += v > eps ? 1 : 0;
  return static_cast<double>(above) / static_cast<double>(values.size());
}

double SinkRatio(const Tensor& probs, const AttentionLayout& layout, int64_t window,
                 double eps) {
  return FractionAbove(KeyMass(probs, layout, window, 0), eps);
}

std::vector<double> PrefixMass(const Tensor& probs, const AttentionLayout& layout) {
  const ProbsView view(probs, layout);
  return MeanOverQueries(view, [&](const float* row, int64_t) {
    double sum = 0;
    for (int64_t j = 0; j < view.prefix; ++j) sum += row[view.bias + j];
    return sum;
  });
}

std::vector<double> BiasKeyMass(const Tensor& probs, const AttentionLayout& layout) {
  const ProbsView view(probs, layout);
  SL_CHECK_MSG(view.bias == 1, "BiasKeyMass needs a bias key (bias_keys = 1)");
  return MeanOverQueries(view,
                         [](const float* row, int64_t) { return static_cast<double>(row[0]); });
}

std::vector<double> VirtualMass(const Tensor& probs, const AttentionLayout& layout) {
  const ProbsView view(probs, layout);
  return MeanOverQueries(view, [](const float* row, int64_t keys) {
    double sum = 0;
    for (int64_t j = 0; j < keys; ++j) sum += row[j];
    return 1.0 - sum;  // softmax1: 1 / (1 + sum exp) of the row's total (Miller 2023)
  });
}

std::vector<double> AttentionEntropy(const Tensor& probs, const AttentionLayout& layout) {
  const ProbsView view(probs, layout);
  return MeanOverQueries(view, [](const float* row, int64_t keys) {
    double entropy = 0;
    for (int64_t j = 0; j < keys; ++j) {
      const double p = row[j];
      if (p > 0) entropy -= p * std::log(p);  // 0 ln 0 = 0
    }
    return entropy;
  });
}

std::vector<double> FirstKeyMassFromRowStats(const Tensor& row_stats, const AttentionLayout& layout,
                                             int64_t window) {
  const RowStatsView view(row_stats, layout);
  SL_CHECK_MSG(1 <= window && window <= view.tokens,
               absl::StrCat("window ", window, " data tokens ", view.tokens));
  // KeyMass with k = 0: queries t = 0 .. T_w - 1, divided by T_w.
  return view.MeanOverQueries(window, [&](int64_t b, int64_t h, int64_t t) {
    return view.At(b, h, t, kRowDataTokenZero);
  });
}

std::vector<double> FirstTokenMassFromRowStats(const Tensor& row_stats,
                                               const AttentionLayout& layout) {
  return FirstKeyMassFromRowStats(row_stats, layout, row_stats.dim(2) - layout.prefix_tokens);
}

double SinkRatioFromRowStats(const Tensor& row_stats, const AttentionLayout& layout,
                             int64_t window, double eps) {
  return FractionAbove(FirstKeyMassFromRowStats(row_stats, layout, window), eps);
}

std::vector<double> PrefixMassFromRowStats(const Tensor& row_stats,
                                           const AttentionLayout& layout) {
  return RowStatsView(row_stats, layout).MeanOfField(kRowPrefixMass);
}

std::vector<double> BiasKeyMassFromRowStats(const Tensor& row_stats,
                                            const AttentionLayout& layout) {
  const RowStatsView view(row_stats, layout);
  SL_CHECK_MSG(view.bias == 1, "BiasKeyMassFromRowStats needs a bias key (bias_keys = 1)");
  return view.MeanOfField(kRowBiasKey);
}

std::vector<double> VirtualMassFromRowStats(const Tensor& row_stats,
                                            const AttentionLayout& layout) {
  const RowStatsView view(row_stats, layout);
  return view.MeanOverQueries(view.tokens, [&](int64_t b, int64_t h, int64_t t) {
    return 1.0 - view.At(b, h, t, kRowTotalMass);
  });
}

std::vector<double> AttentionEntropyFromRowStats(const Tensor& row_stats,
                                                 const AttentionLayout& layout) {
  return RowStatsView(row_stats, layout).MeanOfField(kRowEntropy);
}

std::vector<ActivationSite> TopAbsActivations(const Tensor& h, int count,
                                              int64_t sample_offset) {
  SL_CHECK_MSG(h.rank() == 3, absl::StrCat("h must be [B, S, D], got ", h.ShapeString()));
  SL_CHECK(count >= 0);
  const int64_t positions = h.dim(1), channels = h.dim(2);
  const float* x = h.f32();
  std::vector<ActivationSite> top;
  top.reserve(count + 1);
  for (int64_t i = 0; i < h.numel(); ++i) {
    const float a = std::fabs(x[i]);
    if (static_cast<int>(top.size()) == count && (count == 0 || a <= std::fabs(top.back().value)))
      continue;  // strictly larger only: earlier elements win ties
    ActivationSite site;
    site.sample = sample_offset + i / (positions * channels);
    site.position = (i / channels) % positions;
    site.channel = i % channels;
    site.value = x[i];
    // Insert after every entry with |value| >= a (stable for ties), drop the smallest.
    auto at = std::upper_bound(top.begin(), top.end(), site, AbsGreater);
    top.insert(at, site);
    if (static_cast<int>(top.size()) > count) top.pop_back();
  }
  return top;
}

void MergeTopAbs(std::vector<ActivationSite>* top, const std::vector<ActivationSite>& more,
                 int count) {
  std::vector<ActivationSite> merged;
  merged.reserve(top->size() + more.size());
  std::merge(top->begin(), top->end(), more.begin(), more.end(), std::back_inserter(merged),
             AbsGreater);  // stable: `top` first among equals
  if (static_cast<int>(merged.size()) > count) merged.resize(count);
  *top = std::move(merged);
}

MassiveActivationStats MassiveActivations(const Tensor& h) {
  MassiveActivationStats stats;
  stats.top = TopAbsActivations(h, 3);
  std::vector<float> abs_values(h.numel());
  for (int64_t i = 0; i < h.numel(); ++i) abs_values[i] = std::fabs(h.f32()[i]);
  stats.median_abs = Median(abs_values.data(), h.numel());
  stats.top1_ratio =
      stats.top.empty() ? 0.0 : std::fabs(stats.top[0].value) / stats.median_abs;
  return stats;
}

MomentAccumulator MomentAccumulator::OfChunk(const float* x, int64_t n) {
  // The chunk's own mean and central sums (two passes).
  MomentAccumulator chunk;
  if (n <= 0) return chunk;
  double mean = 0;
  for (int64_t i = 0; i < n; ++i) mean += x[i];
  mean /= static_cast<double>(n);
  for (int64_t i = 0; i < n; ++i) {
    const double d = x[i] - mean, d2 = d * d;
    chunk.m2_ += d2;
    chunk.m3_ += d2 * d;
    chunk.m4_ += d2 * d2;
  }
  chunk.mean_ = mean;
  chunk.count_ = n;
  return chunk;
}

void MomentAccumulator::Merge(const MomentAccumulator& b) {
  if (b.count_ == 0) return;
  // Pebay 2008, eqs. 2.1 (mean), 3.1 (M2), and the pairwise M3, M4 updates.
  const double na = static_cast<double>(count_), nb = static_cast<double>(b.count_);
  const double nt = na + nb;
  const double delta = b.mean_ - mean_, d2 = delta * delta;
  const double m4 = m4_ + b.m4_ +
                    d2 * d2 * na * nb * (na * na - na * nb + nb * nb) / (nt * nt * nt) +
                    6 * d2 * (na * na * b.m2_ + nb * nb * m2_) / (nt * nt) +
                    4 * delta * (na * b.m3_ - nb * m3_) / nt;
  const double m3 = m3_ + b.m3_ + d2 * delta * na * nb * (na - nb) / (nt * nt) +
                    3 * delta * (na * b.m2_ - nb * m2_) / nt;
  m2_ = m2_ + b.m2_ + d2 * na * nb / nt;
  m3_ = m3;
  m4_ = m4;
  mean_ += delta * nb / nt;
  count_ += b.count_;
}

void MomentAccumulator::Add(const float* x, int64_t n) { Merge(OfChunk(x, n)); }

void MomentAccumulator::AddInChunks(const float* x, int64_t n, int64_t chunk) {
  SL_CHECK(chunk > 0);
  const int64_t parts = (n + chunk - 1) / chunk;
  std::vector<MomentAccumulator> sums(std::max<int64_t>(parts, 0));
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < parts; ++i) {
    sums[i] = OfChunk(x + i * chunk, std::min(chunk, n - i * chunk));
  }
  for (const MomentAccumulator& part : sums) Merge(part);  // in order: deterministic
}

double MomentAccumulator::ExcessKurtosis() const {
  if (count_ == 0 || m2_ <= 0) return std::numeric_limits<double>::quiet_NaN();
  // E[(x-mu)^4] / sigma^4 - 3 = n M4 / M2^2 - 3.
  return static_cast<double>(count_) * m4_ / (m2_ * m2_) - 3.0;
}

double ExcessKurtosis(const Tensor& x) {
  MomentAccumulator moments;
  moments.Add(x.f32(), x.numel());
  return moments.ExcessKurtosis();
}

double MaxAbs(const Tensor& x) {
  const float* data = x.f32();
  float max_abs = 0;
  for (int64_t i = 0; i < x.numel(); ++i) max_abs = std::max(max_abs, std::fabs(data[i]));
  return max_abs;
}

std::vector<double> TokenZeroNormRatio(const Tensor& x, int64_t first_data_position) {
  SL_CHECK_MSG(x.rank() == 3 || x.rank() == 4,
               absl::StrCat("x must be [B, S, D] or [B, S, G, d], got ", x.ShapeString()));
  const int64_t batch = x.dim(0), positions = x.dim(1);
  const int64_t groups = x.rank() == 4 ? x.dim(2) : 1, width = x.dim(-1);
  const int64_t tokens = positions - first_data_position;
  SL_CHECK_MSG(first_data_position >= 0 && tokens >= 2,
               absl::StrCat("need two data positions in ", x.ShapeString(), " from position ",
                            first_data_position));
  auto norm = [&](int64_t b, int64_t s, int64_t g) {
    const float* v = x.f32() + ((b * positions + s) * groups + g) * width;
    double sum = 0;
    for (int64_t i = 0; i < width; ++i) sum += static_cast<double>(v[i]) * v[i];
    return std::sqrt(sum);
  };
  std::vector<double> out(batch * groups);
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t g = 0; g < groups; ++g) {
      double rest = 0;
      for (int64_t t = 1; t < tokens; ++t) rest += norm(b, first_data_position + t, g);
      out[b * groups + g] =
          norm(b, first_data_position, g) / (rest / static_cast<double>(tokens - 1));
    }
  }
  return out;
}

std::vector<double> GateMean(const Tensor& gate, int64_t first_data_position) {
  SL_CHECK_MSG(gate.rank() == 3, absl::StrCat("gate must be [B, S, G], got ", gate.ShapeString()));
  const int64_t batch = gate.dim(0), positions = gate.dim(1), channels = gate.dim(2);
  SL_CHECK(first_data_position >= 0 && first_data_position < positions);
  std::vector<double> out(batch);
  for (int64_t b = 0; b < batch; ++b) {
    const float* g = gate.f32() + (b * positions + first_data_position) * channels;
    const int64_t n = (positions - first_data_position) * channels;
    double sum = 0;
    for (int64_t i = 0; i < n; ++i) sum += g[i];
    out[b] = sum / static_cast<double>(n);
  }
  return out;
}

}  // namespace sinklab

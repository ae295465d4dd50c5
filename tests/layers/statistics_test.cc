// Sink and outlier statistics (layers/statistics.h) on hand-built tensors whose answers are
// worked out by hand: Sink^eps and first-token mass of planted attention patterns, the
// per-sample indicator, the window truncation, prefix / bias / virtual masses, entropy,
// kurtosis in closed form, massive activations, norm ratios and gate means. The row-statistics
// versions (Backend::AttentionRowStats) against the probs versions on the CPU backend's
// random attention, for every normalizer and layout.
#include "layers/statistics.h"

#include <omp.h>

#include <cmath>
#include <vector>

#include "core/rng.h"
#include "gtest/gtest.h"
#include "layers/cpu/cpu_backend.h"
#include "tests/layers/gradient_check.h"

namespace sinklab {
namespace {

// Host probs [B, H, S, K] backed by a vector; Row(b, h, s) is a writable row of K weights.
struct Probs {
  Probs(int64_t b, int64_t h, int64_t s, int64_t k)
      : batch(b), heads(h), positions(s), keys(k), data(b * h * s * k, 0.0f) {}
  float* Row(int64_t b, int64_t h, int64_t s) {
    return data.data() + ((b * heads + h) * positions + s) * keys;
  }
  Tensor tensor() {
    return Tensor(data.data(), DType::kF32, Device::kCpu, {batch, heads, positions, keys});
  }
  int64_t batch, heads, positions, keys;
  std::vector<float> data;
};

// Causal rows with weight w on key 0 and 1 - w spread evenly over keys 1..t (row 0: 1 on
// key 0). alpha_0 over T rows = (1 + w (T - 1)) / T.
void FillSinkRows(Probs& p, int64_t b, int64_t h, float w) {
  p.Row(b, h, 0)[0] = 1.0f;
  for (int64_t t = 1; t < p.positions; ++t) {
    float* row = p.Row(b, h, t);
    row[0] = w;
    for (int64_t j = 1; j <= t; ++j) row[j] = (1.0f - w) / static_cast<float>(t);
  }
}

TEST(StatisticsTest, EveryHeadSinkingGivesSinkOneAndItsFirstTokenMass) {
  const int64_t T = 8;
  Probs p(2, 3, T, T);
  for (int64_t b = 0; b < 2; ++b) {
    for (int64_t h = 0; h < 3; ++h) FillSinkRows(p, b, h, 0.6f);
  }
  const AttentionLayout layout;
  EXPECT_DOUBLE_EQ(SinkRatio(p.tensor(), layout, T, 0.3), 1.0);
  // Row 0 can only see itself (weight 1): alpha_0 = (1 + 0.6 * 7) / 8 = 0.65.
  for (const double a : FirstTokenMass(p.tensor(), layout)) EXPECT_NEAR(a, 0.65, 1e-6);
  EXPECT_DOUBLE_EQ(SinkRatio(p.tensor(), layout, T, 0.7), 0.0);
}

TEST(StatisticsTest, SixTenthsOnDataTokenZeroBehindAPrefixTokenIsMassSixTenths) {
  // One prefix token (position 0) and T = 5 data tokens: every data query puts 0.6 on data
  // token 0 (key 1) and the rest on the other causal keys (the prefix key included), so
  // even data token 0's own row (keys: prefix, itself) has 0.6 on it.
  const int64_t P = 1, T = 5, S = P + T;
  Probs p(1, 2, S, S);
  for (int64_t h = 0; h < 2; ++h) {
    p.Row(0, h, 0)[0] = 1.0f;  // the prefix query (not measured)
    for (int64_t t = 0; t < T; ++t) {
      float* row = p.Row(0, h, P + t);
      row[1] = 0.6f;
      const int64_t others = t + 1;  // the prefix key and data keys 1..t
      row[0] = 0.4f / others;
      for (int64_t j = 1; j <= t; ++j) row[1 + j] = 0.4f / others;
    }
  }
  const AttentionLayout layout{P, 0};
  for (const double a : FirstTokenMass(p.tensor(), layout)) EXPECT_NEAR(a, 0.6, 1e-6);
  EXPECT_DOUBLE_EQ(SinkRatio(p.tensor(), layout, 4, 0.3), 1.0);
  // Prefix mass: mean over t of 0.4 / (t + 1).
  const double prefix = (0.4 / 1 + 0.4 / 2 + 0.4 / 3 + 0.4 / 4 + 0.4 / 5) / 5;
  for (const double m : PrefixMass(p.tensor(), layout)) EXPECT_NEAR(m, prefix, 1e-6);
}

TEST(StatisticsTest, SinkTakesTheIndicatorPerSampleBeforeAveraging) {
  // Samples 0 and 1 have alpha_0 = 0.5 in every head, samples 2 and 3 have 0.2. Averaging
  // alpha first would give 0.35 > 0.3, i.e. Sink = 1; the per-sample indicator gives 0.5.
  const int64_t T = 8;
  Probs p(4, 2, T, T);
  const float sinking = (0.5f * T - 1) / (T - 1), not_sinking = (0.2f * T - 1) / (T - 1);
  for (int64_t b = 0; b < 4; ++b) {
    for (int64_t h = 0; h < 2; ++h) FillSinkRows(p, b, h, b < 2 ? sinking : not_sinking);
  }
  const std::vector<double> alpha = KeyMass(p.tensor(), AttentionLayout(), T, 0);
  ASSERT_EQ(alpha.size(), 8u);
  for (int64_t i = 0; i < 8; ++i) EXPECT_NEAR(alpha[i], i < 4 ? 0.5 : 0.2, 1e-6) << i;
  double mean_alpha = 0;
  for (const double a : alpha) mean_alpha += a / alpha.size();
  EXPECT_GT(mean_alpha, 0.3);
  EXPECT_DOUBLE_EQ(SinkRatio(p.tensor(), AttentionLayout(), T, 0.3), 0.5);
}

TEST(StatisticsTest, WindowUsesRowsFromKeyToWindowAndDividesByWindowMinusKey) {
  const int64_t T = 6, window = 4;
  Probs p(1, 1, T, T);
  Rng rng(3, 0);
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t j = 0; j <= t; ++j) p.Row(0, 0, t)[j] = 0.1f + rng.Uniform();
  }
  auto a = [&](int64_t t, int64_t j) { return static_cast<double>(p.Row(0, 0, t)[j]); };
  const double alpha1 = (a(1, 1) + a(2, 1) + a(3, 1)) / 3.0;
  const double alpha0 = (a(0, 0) + a(1, 0) + a(2, 0) + a(3, 0)) / 4.0;
  EXPECT_NEAR(KeyMass(p.tensor(), AttentionLayout(), window, 1)[0], alpha1, 1e-6);
  EXPECT_NEAR(KeyMass(p.tensor(), AttentionLayout(), window, 0)[0], alpha0, 1e-6);
  // Rows at or past the window do not count, nor rows above the key.
  p.Row(0, 0, 4)[1] = 100.0f;
  p.Row(0, 0, 5)[0] = 100.0f;
  p.Row(0, 0, 0)[1] = 100.0f;  // a (non-causal) entry above the key
  EXPECT_NEAR(KeyMass(p.tensor(), AttentionLayout(), window, 1)[0], alpha1, 1e-6);
  EXPECT_NEAR(KeyMass(p.tensor(), AttentionLayout(), window, 0)[0], alpha0, 1e-6);
}

TEST(StatisticsTest, PrefixBiasAndVirtualMassesOfAHandLayout) {
  // bias key (key 0), one prefix token (position 0, key 1), T = 2 data tokens (positions
  // 1, 2; keys 2, 3). Rows of the data queries, softmax1-like (they sum to < 1):
  //   t = 0: [0.2, 0.3, 0.1, 0  ]  sum 0.6
  //   t = 1: [0.1, 0.2, 0.3, 0.3]  sum 0.9
  const AttentionLayout layout{1, 1};
  Probs p(1, 1, 3, 4);
  const float row0[] = {0.2f, 0.3f, 0.1f, 0.0f}, row1[] = {0.1f, 0.2f, 0.3f, 0.3f};
  std::copy(row0, row0 + 4, p.Row(0, 0, 1));
  std::copy(row1, row1 + 4, p.Row(0, 0, 2));
  p.Row(0, 0, 0)[0] = 0.5f;  // the prefix query: not measured
  EXPECT_NEAR(BiasKeyMass(p.tensor(), layout)[0], (0.2 + 0.1) / 2, 1e-6);
  EXPECT_NEAR(PrefixMass(p.tensor(), layout)[0], (0.3 + 0.2) / 2, 1e-6);
  EXPECT_NEAR(VirtualMass(p.tensor(), layout)[0], (0.4 + 0.1) / 2, 1e-6);
  EXPECT_NEAR(FirstTokenMass(p.tensor(), layout)[0], (0.1 + 0.3) / 2, 1e-6);
  const double entropy0 = -(0.2 * std::log(0.2) + 0.3 * std::log(0.3) + 0.1 * std::log(0.1));
  const double entropy1 = -(0.1 * std::log(0.1) + 0.2 * std::log(0.2) + 0.6 * std::log(0.3));
  EXPECT_NEAR(AttentionEntropy(p.tensor(), layout)[0], (entropy0 + entropy1) / 2, 1e-6);
}

TEST(StatisticsTest, EntropyOfUniformCausalRowsIsLogOfTheirLength) {
  const int64_t T = 5;
  Probs p(1, 1, T, T);
  double expected = 0;
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t j = 0; j <= t; ++j) p.Row(0, 0, t)[j] = 1.0f / (t + 1);
    expected += std::log(static_cast<double>(t + 1)) / T;  // row t: ln(t + 1)
  }
  EXPECT_NEAR(AttentionEntropy(p.tensor(), AttentionLayout())[0], expected, 1e-6);
}

TEST(StatisticsTest, KurtosisOfAPlantedOutlierMatchesTheClosedForm) {
  // n - 1 = 998 values +-1 (half each) and one c = 100: mu = c / n,
  //   M2 = sum (x - mu)^2 = (n - 1) + c^2 - c^2 / n,
  //   M4 = (n - 1) / 2 ((1 - mu)^4 + (1 + mu)^4) + (c - mu)^4,
  //   excess kurtosis = n M4 / M2^2 - 3   (~ 821: ~ n c^4 / (n + c^2)^2, the outlier dominates).
  const int64_t n = 999;
  const double c = 100, mu = c / n;
  std::vector<float> x(n);
  for (int64_t i = 0; i + 1 < n; ++i) x[i] = i % 2 ? 1.0f : -1.0f;
  x[n - 1] = static_cast<float>(c);
  const double m2 = (n - 1) + c * c - c * c / n;
  const double m4 =
      (n - 1) / 2.0 * (std::pow(1 - mu, 4) + std::pow(1 + mu, 4)) + std::pow(c - mu, 4);
  const double expected = n * m4 / (m2 * m2) - 3;
  const Tensor t(x.data(), DType::kF32, Device::kCpu, {n});
  EXPECT_NEAR(ExcessKurtosis(t), expected, 1e-9 * expected);
  EXPECT_GT(expected, 800);
  // Chunked accumulation (the runner's batches) gives the same answer.
  MomentAccumulator chunks;
  chunks.Add(x.data(), 400);
  chunks.Add(x.data() + 400, 1);
  chunks.Add(x.data() + 401, n - 401);
  EXPECT_NEAR(chunks.ExcessKurtosis(), expected, 1e-9 * expected);
}

TEST(StatisticsTest, KurtosisOfNormalDataIsNearZeroEvenWithALargeMean) {
  // Standard error of the sample excess kurtosis ~ sqrt(24 / n) = 0.011 for n = 2e5.
  const int64_t n = 200000;
  std::vector<float> x(n);
  FillNormal(x.data(), n, 1000.0f, 1.0f, /*seed=*/7, /*stream=*/0);
  MomentAccumulator moments;
  for (int64_t i = 0; i < n; i += 4096) moments.Add(x.data() + i, std::min<int64_t>(4096, n - i));
  EXPECT_NEAR(moments.ExcessKurtosis(), 0.0, 0.06);
  EXPECT_NEAR(moments.mean(), 1000.0, 0.02);
}

// Chunked, parallel moments (the stats runner's path) merge to the one-pass moments, with
// the same bits for any thread count (fixed chunks, merged in order).
TEST(StatisticsTest, MomentChunksMergeToTheOnePassMoments) {
  const int64_t n = 300007;
  std::vector<float> x(n);
  FillNormal(x.data(), n, 3.0f, 2.0f, /*seed=*/8, /*stream=*/0);
  x[12345] = 400.0f;  // an outlier, so the kurtosis is far from 0
  MomentAccumulator one_pass, chunked, again;
  one_pass.Add(x.data(), n);
  chunked.AddInChunks(x.data(), n, 4096);
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  again.AddInChunks(x.data(), n, 4096);
  omp_set_num_threads(saved);
  EXPECT_GT(one_pass.ExcessKurtosis(), 100.0);
  EXPECT_NEAR(chunked.ExcessKurtosis(), one_pass.ExcessKurtosis(),
              1e-9 * one_pass.ExcessKurtosis());
  EXPECT_NEAR(chunked.mean(), one_pass.mean(), 1e-12 * std::fabs(one_pass.mean()));
  EXPECT_EQ(chunked.count(), n);
  EXPECT_EQ(again.ExcessKurtosis(), chunked.ExcessKurtosis());
}

TEST(StatisticsTest, MassiveActivationsFindTheTopThreeAndTheMedian) {
  // h [2, 4, 5] of +-1 with three planted values: sorted |h| = 37 ones, 200, 500, 1000, so
  // the median (mean of the 20th and 21st) is 1 and top1 / median = 1000.
  std::vector<float> h(2 * 4 * 5);
  for (size_t i = 0; i < h.size(); ++i) h[i] = i % 3 ? 1.0f : -1.0f;
  auto at = [&](int b, int s, int d) -> float& { return h[(b * 4 + s) * 5 + d]; };
  at(1, 2, 3) = 1000.0f;
  at(0, 0, 4) = -500.0f;
  at(1, 3, 0) = 200.0f;
  const MassiveActivationStats stats =
      MassiveActivations(Tensor(h.data(), DType::kF32, Device::kCpu, {2, 4, 5}));
  ASSERT_EQ(stats.top.size(), 3u);
  EXPECT_EQ(stats.top[0].sample, 1);
  EXPECT_EQ(stats.top[0].position, 2);
  EXPECT_EQ(stats.top[0].channel, 3);
  EXPECT_EQ(stats.top[0].value, 1000.0f);
  EXPECT_EQ(stats.top[1].sample, 0);
  EXPECT_EQ(stats.top[1].position, 0);
  EXPECT_EQ(stats.top[1].channel, 4);
  EXPECT_EQ(stats.top[1].value, -500.0f);
  EXPECT_EQ(stats.top[2].position, 3);
  EXPECT_EQ(stats.top[2].channel, 0);
  EXPECT_DOUBLE_EQ(stats.median_abs, 1.0);
  EXPECT_DOUBLE_EQ(stats.top1_ratio, 1000.0);
  // Merging per-batch lists (sample offsets) keeps the global top 3.
  std::vector<ActivationSite> top = TopAbsActivations(
      Tensor(h.data(), DType::kF32, Device::kCpu, {1, 4, 5}), 3, /*sample_offset=*/0);
  const Tensor second(h.data() + 20, DType::kF32, Device::kCpu, {1, 4, 5});
  MergeTopAbs(&top, TopAbsActivations(second, 3, /*sample_offset=*/1), 3);
  ASSERT_EQ(top.size(), 3u);
  EXPECT_EQ(top[0].value, 1000.0f);
  EXPECT_EQ(top[0].sample, 1);
  EXPECT_EQ(top[1].value, -500.0f);
  EXPECT_EQ(top[2].value, 200.0f);
}

TEST(StatisticsTest, NormRatiosOfAHandTensor) {
  // x [1, 4, 2, 2] (B, S, G groups, d), first data position 1 (position 0: a prefix token):
  //   group 0: data norms 10, 1, 3      -> 10 / ((1 + 3) / 2) = 5
  //   group 1: data norms 2, 4, 4       -> 2 / 4 = 0.5
  std::vector<float> x = {
      99, 99, 99, 99,   // position 0 (prefix): ignored
      6, 8, 2, 0,       // position 1: |(6, 8)| = 10, |(2, 0)| = 2
      0, 1, 0, 4,       // position 2: 1, 4
      3, 0, 4, 0,       // position 3: 3, 4
  };
  const std::vector<double> r =
      TokenZeroNormRatio(Tensor(x.data(), DType::kF32, Device::kCpu, {1, 4, 2, 2}), 1);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_NEAR(r[0], 5.0, 1e-12);
  EXPECT_NEAR(r[1], 0.5, 1e-12);
  // As one group [1, 4, 4]: norms 10.198 (sqrt 104), sqrt 17, 5.
  const std::vector<double> one =
      TokenZeroNormRatio(Tensor(x.data(), DType::kF32, Device::kCpu, {1, 4, 4}), 1);
  EXPECT_NEAR(one[0], std::sqrt(104.0) / ((std::sqrt(17.0) + 5.0) / 2), 1e-12);
}

TEST(StatisticsTest, MaxAbsAndGateMeanOverDataPositions) {
  std::vector<float> x = {0.5f, -3.0f, 2.0f, 0.25f};
  EXPECT_DOUBLE_EQ(MaxAbs(Tensor(x.data(), DType::kF32, Device::kCpu, {2, 2})), 3.0);
  // The backend's reduction (the stats runner's path) agrees, and skips a NaN.
  CpuBackend backend;
  EXPECT_DOUBLE_EQ(backend.MaxAbsToHost(Tensor(x.data(), DType::kF32, Device::kCpu, {2, 2})), 3.0);
  std::vector<float> with_nan = {NAN, -1.5f, 0.5f};
  EXPECT_DOUBLE_EQ(backend.MaxAbsToHost(Tensor(with_nan.data(), DType::kF32, Device::kCpu, {3})),
                   1.5);
  // gate [1, 2, 2]: position 0 is a prefix token, the data position has mean 0.375.
  const std::vector<double> g = GateMean(Tensor(x.data(), DType::kF32, Device::kCpu, {1, 2, 2}), 1);
  ASSERT_EQ(g.size(), 1u);
  EXPECT_DOUBLE_EQ(g[0], (2.0 + 0.25) / 2);
}

// One random attention of the CPU backend (q, k std 1.5: uneven rows) for `normalizer`, P
// prefix positions and `bias` bias keys, its probs and its row statistics.
struct RandomAttention {
  RandomAttention(AttentionNormalizer normalizer, int64_t P, int64_t bias, uint64_t stream)
      : layout{P, bias} {
    const int64_t B = 2, S = P + 11, H = 4, Hkv = 2, d = 8, K = bias + S;
    AttentionSpec spec;
    spec.normalizer = normalizer;
    spec.scale = 1.0f / std::sqrt(static_cast<float>(d));
    spec.sigmoid_bias = -std::log(static_cast<float>(K));
    spec.clip_gamma = -0.03f;
    spec.clip_zeta = 1.03f;
    const Tensor q = pool.Random({B, S, H, d}, stream, 1.5f);
    const Tensor k = pool.Random({B, K, Hkv, d}, stream + 1, 1.5f);
    const Tensor v = pool.Random({B, K, Hkv, d}, stream + 2);
    const Tensor sink = pool.Random({H}, stream + 3);
    const Tensor out = pool.Zeros({B, S, H, d}), lse = pool.Zeros({B, H, S});
    probs = pool.Zeros({B, H, S, K});
    row_stats = pool.Zeros({B, H, S, int64_t{kAttentionRowStatFields}});
    CpuBackend backend;
    const Tensor unclipped = normalizer == AttentionNormalizer::kClippedSoftmax
                                 ? pool.Zeros({B, S, H, d})
                                 : Tensor();  // clipped softmax's unclipped_values
    backend.AttentionForward(out, probs, lse, unclipped, q, k, v, sink, spec);
    backend.AttentionRowStats(row_stats, probs, q, k, lse, sink, spec, P);
  }
  TensorPool pool;
  AttentionLayout layout;
  Tensor probs, row_stats;
};

void ExpectNear(const std::vector<double>& got, const std::vector<double>& want, double tol,
                const char* what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], tol) << what << " " << i;
}

TEST(StatisticsTest, RowStatsGiveTheProbsStatisticsForEveryNormalizerAndLayout) {
  const AttentionNormalizer normalizers[] = {
      AttentionNormalizer::kSoftmax,  AttentionNormalizer::kSoftmax1,
      AttentionNormalizer::kSinkLogit, AttentionNormalizer::kSoftpick,
      AttentionNormalizer::kSigmoid,  AttentionNormalizer::kClippedSoftmax};
  const int64_t layouts[][2] = {{0, 0}, {0, 1}, {2, 0}, {2, 1}};  // {P, bias keys}
  uint64_t stream = 100;
  for (const AttentionNormalizer normalizer : normalizers) {
    for (const auto& [P, bias] : layouts) {
      SCOPED_TRACE(testing::Message() << "normalizer " << static_cast<int>(normalizer)
                                      << " P " << P << " bias " << bias);
      const RandomAttention a(normalizer, P, bias, stream += 10);
      const Tensor& probs = a.probs;
      const Tensor& rows = a.row_stats;
      // Data token 0's weight is copied, so the key masses agree to rounding of the mean.
      for (const int64_t window : {1, 4, 11}) {
        ExpectNear(FirstKeyMassFromRowStats(rows, a.layout, window),
                   KeyMass(probs, a.layout, window, 0), 1e-12, "key mass");
      }
      ExpectNear(FirstTokenMassFromRowStats(rows, a.layout), FirstTokenMass(probs, a.layout),
                 1e-12, "first-token mass");
      for (const double eps : {0.1, 0.3, 0.5}) {
        EXPECT_EQ(SinkRatioFromRowStats(rows, a.layout, 4, eps),
                  SinkRatio(probs, a.layout, 4, eps));
      }
      // Row sums are rounded to f32 once per row.
      ExpectNear(PrefixMassFromRowStats(rows, a.layout), PrefixMass(probs, a.layout), 1e-6,
                 "prefix mass");
      ExpectNear(VirtualMassFromRowStats(rows, a.layout), VirtualMass(probs, a.layout), 1e-6,
                 "virtual mass");
      const std::vector<double> entropy = AttentionEntropy(probs, a.layout);
      ExpectNear(AttentionEntropyFromRowStats(rows, a.layout), entropy, 1e-5, "entropy");
      for (const double e : entropy) EXPECT_GT(e, 0.1);  // random rows are far from one-hot
      if (bias > 0) {
        ExpectNear(BiasKeyMassFromRowStats(rows, a.layout), BiasKeyMass(probs, a.layout), 1e-6,
                   "bias mass");
      }
      if (P > 0) {
        for (const double m : PrefixMass(probs, a.layout)) EXPECT_GT(m, 0.0);
      }
    }
  }
}

TEST(StatisticsTest, RowStatsOfAHandLayoutHoldEachField) {
  // One bias key and one prefix token; the data row t = 1 (position 2) sees keys 0..3:
  // weights 0.1 (bias), 0.2 (prefix), 0.3 (data token 0), 0.15 (itself); 0.25 virtual.
  const int64_t S = 3, K = 4;
  Probs p(1, 1, S, K);
  float* row = p.Row(0, 0, 2);
  row[0] = 0.1f, row[1] = 0.2f, row[2] = 0.3f, row[3] = 0.15f;
  TensorPool pool;
  const Tensor q = pool.Zeros({1, S, 1, 2}), k = pool.Zeros({1, K, 1, 2});
  const Tensor rows = pool.Zeros({1, 1, S, int64_t{kAttentionRowStatFields}});
  CpuBackend backend;
  backend.AttentionRowStats(rows, p.tensor(), q, k, pool.Zeros({1, 1, S}), Tensor(),
                            AttentionSpec(), /*prefix_tokens=*/1);
  const float* r = rows.f32() + 2 * kAttentionRowStatFields;
  EXPECT_FLOAT_EQ(r[kRowDataTokenZero], 0.3f);
  EXPECT_FLOAT_EQ(r[kRowBiasKey], 0.1f);
  EXPECT_FLOAT_EQ(r[kRowPrefixMass], 0.2f);
  EXPECT_FLOAT_EQ(r[kRowTotalMass], 0.75f);
  const double entropy = -(0.1 * std::log(0.1) + 0.2 * std::log(0.2) + 0.3 * std::log(0.3) +
                           0.15 * std::log(0.15));
  EXPECT_NEAR(r[kRowEntropy], entropy, 1e-6);
  // The prefix row (position 0) sees the bias key and itself only: no data token 0.
  EXPECT_FLOAT_EQ(rows.f32()[kRowDataTokenZero], 0.0f);
}

}  // namespace
}  // namespace sinklab

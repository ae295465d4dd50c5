// The attention normalizers (softmax1, sink logit, softpick, sigmoid, clipped softmax) and
// the KV-bias keys of the CPU attention kernel: hand-worked rows, the properties each
// variant promises, finite-difference gradients (incl. the sink logit's) with grouped-query
// attention with and without a bias key, and bit-identical results for any thread count.
#include "layers/cpu/attention_normalizer.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "gtest/gtest.h"
#include "layers/cpu/cpu_backend.h"
#include "layers/model_dims.h"
#include "tests/layers/gradient_check.h"

namespace sinklab {
namespace {

const AttentionNormalizer kAllNormalizers[] = {
    AttentionNormalizer::kSoftmax,   AttentionNormalizer::kSoftmax1,
    AttentionNormalizer::kSinkLogit, AttentionNormalizer::kSoftpick,
    AttentionNormalizer::kSigmoid,   AttentionNormalizer::kClippedSoftmax};

// gamma/zeta wider than the defaults so that both clip sides occur in small random cases.
AttentionSpec SpecFor(AttentionNormalizer normalizer, int64_t head_dim) {
  AttentionSpec spec;
  spec.normalizer = normalizer;
  spec.scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  spec.sigmoid_bias = -1.3f;
  spec.clip_gamma = -0.1f;
  spec.clip_zeta = 1.1f;
  return spec;
}

// Clipped softmax's row sum sum_k sm_k dsm_k = sum_k UnclippedWeight(p_k) dp_k (the kernel's
// dout . C with dp_k = dout . v_k); what NormalizeRowBackward expects.
float ClippedRowDot(const AttentionSpec& spec, const std::vector<float>& p, const float* dp) {
  float sum = 0.0f;
  for (size_t j = 0; j < p.size(); ++j) sum += UnclippedWeight(spec, p[j]) * dp[j];
  return sum;
}

float Normalize(AttentionSpec spec, float sink, std::vector<float> s, std::vector<float>* p) {
  p->assign(s.size(), 0.0f);
  return NormalizeRow(spec, sink, s.data(), static_cast<int64_t>(s.size()), p->data());
}

TEST(AttentionNormalizerTest, Softmax1AndSinkLogitMatchHandComputedRows) {
  std::vector<float> p;
  // softmax1, s = (0, ln 2): p = (1, 2) / (1 + 1 + 2) = (1/4, 1/2), rows sum to 3/4.
  float lse = Normalize(SpecFor(AttentionNormalizer::kSoftmax1, 1), 0, {0, std::log(2.0f)}, &p);
  EXPECT_NEAR(p[0], 0.25, 1e-7);
  EXPECT_NEAR(p[1], 0.5, 1e-7);
  EXPECT_NEAR(lse, std::log(4.0), 1e-6);
  // sink logit b = ln 3, s = (0, 0): p = 1 / (3 + 2) each, virtual mass 3/5 = exp(b - lse).
  lse = Normalize(SpecFor(AttentionNormalizer::kSinkLogit, 1), std::log(3.0f), {0, 0}, &p);
  EXPECT_NEAR(p[0], 0.2, 1e-7);
  EXPECT_NEAR(p[1], 0.2, 1e-7);
  EXPECT_NEAR(std::exp(std::log(3.0) - lse), 0.6, 1e-6);
}

TEST(AttentionNormalizerTest, ScoresFarBelowTheSinkGiveRowsSummingWellUnderOne) {
  std::vector<float> p;
  const std::vector<float> s = {-9.0f, -10.0f, -8.5f};
  Normalize(SpecFor(AttentionNormalizer::kSoftmax1, 1), 0, s, &p);
  double sum = 0, expected = 0;
  for (float x : s) expected += std::exp(static_cast<double>(x));
  for (float x : p) sum += x;
  EXPECT_NEAR(sum, expected / (1 + expected), 1e-8);  // = 4.1e-4
  EXPECT_LT(sum, 1e-3);
  // A sink logit of 30 above scores of 10 (no overflow: the max includes b).
  const float lse =
      Normalize(SpecFor(AttentionNormalizer::kSinkLogit, 1), 30.0f, {10.0f, 9.0f}, &p);
  EXPECT_NEAR(p[0], std::exp(-20.0), 1e-12);
  EXPECT_NEAR(lse, 30.0, 1e-5);
}

TEST(AttentionNormalizerTest, SoftpickGivesExactZerosForNonPositiveScores) {
  std::vector<float> p;
  // s = (ln 2, 0, -ln 2): e^s - 1 = (1, 0, -1/2), denominator 1.5 + eps.
  const float lse = Normalize(SpecFor(AttentionNormalizer::kSoftpick, 1), 0,
                              {std::log(2.0f), 0.0f, -std::log(2.0f)}, &p);
  EXPECT_NEAR(p[0], 1.0 / 1.5, 1e-6);
  EXPECT_EQ(p[1], 0.0f);
  EXPECT_EQ(p[2], 0.0f);
  EXPECT_NEAR(lse, std::log(1.5), 1e-6);
  // All scores negative: the whole row is exactly zero (attend to nothing).
  Normalize(SpecFor(AttentionNormalizer::kSoftpick, 1), 0, {-0.1f, -3.0f, -1e-6f}, &p);
  for (float x : p) EXPECT_EQ(x, 0.0f);
}

TEST(AttentionNormalizerTest, SigmoidRowsAreNotNormalized) {
  std::vector<float> p;
  AttentionSpec spec = SpecFor(AttentionNormalizer::kSigmoid, 1);
  spec.sigmoid_bias = -std::log(2.0f);
  // sigmoid(0 - ln 2) = 1/3, sigmoid(ln 3 - ln 2) = 1.5 / 2.5 = 0.6: the row sums to 14/15.
  const float lse = Normalize(spec, 0, {0.0f, std::log(3.0f)}, &p);
  EXPECT_NEAR(p[0], 1.0 / 3.0, 1e-7);
  EXPECT_NEAR(p[1], 0.6, 1e-7);
  EXPECT_NEAR(lse, std::log(14.0 / 15.0), 1e-6);
  // The default bias is -ln(number of keys).
  AttentionConfig config;
  config.set_normalizer(AttentionConfig::SIGMOID);
  EXPECT_NEAR(AttentionSpecOf(config, 4, 129).sigmoid_bias, -std::log(129.0), 1e-6);
  config.set_sigmoid_bias(0.5f);
  EXPECT_EQ(AttentionSpecOf(config, 4, 129).sigmoid_bias, 0.5f);
}

TEST(AttentionNormalizerTest, ClippedSoftmaxClipsToExactlyZeroAndOneWithZeroGradient) {
  std::vector<float> p;
  const AttentionSpec spec = SpecFor(AttentionNormalizer::kClippedSoftmax, 1);  // -0.1, 1.1
  // softmax (0.01, 0.02, 0.97): 1.2 sm - 0.1 = (-0.088, -0.076, 1.064) -> (0, 0, 1).
  const std::vector<float> s = {0.0f, std::log(2.0f), std::log(97.0f)};
  const float lse = Normalize(spec, 0, s, &p);
  EXPECT_EQ(p[0], 0.0f);
  EXPECT_EQ(p[1], 0.0f);
  EXPECT_EQ(p[2], 1.0f);
  EXPECT_NEAR(lse, std::log(100.0), 1e-6);
  std::vector<float> ds(3), dp = {0.3f, -1.2f, 0.7f};
  NormalizeRowBackward(spec, 0, p.data(), s.data(), lse, ClippedRowDot(spec, p, dp.data()),
                       dp.data(), 3, ds.data());
  for (float x : ds) EXPECT_EQ(x, 0.0f);
  // softmax (0.25, 0.75): 1.2 sm - 0.1 = (0.2, 0.8), inside (0, 1): no clipping.
  Normalize(spec, 0, {0.0f, std::log(3.0f)}, &p);
  EXPECT_NEAR(p[0], 0.2, 1e-6);
  EXPECT_NEAR(p[1], 0.8, 1e-6);
}

// Row-level finite differences of every normalizer on fixed scores away from the kinks
// (|s| >= 0.3 for softpick; every y = (zeta - gamma) sm + gamma at least 0.04 from 0 and 1
// for clipped softmax, checked), incl. dL/db of the sink logit. eps 1e-3, L = sum(p * r).
TEST(AttentionNormalizerTest, RowBackwardMatchesFiniteDifferencesAwayFromKinks) {
  TensorPool pool;
  const int64_t n = 7;
  for (AttentionNormalizer normalizer : kAllNormalizers) {
    const AttentionSpec spec = SpecFor(normalizer, 1);
    // Clipped softmax: y = 1.2 sm - 0.1 = (0.22, -0.09, -0.065, 0.076, -0.082, -0.042,
    // 0.483): four entries clipped to 0, three inside.
    Tensor s = pool.Zeros({n}), r = pool.Random({n}, 41);
    const float scores[n] = {2.5f, -1.0f, 0.3f, 1.9f, -0.4f, 0.8f, 3.1f};
    std::memcpy(s.data(), scores, sizeof(scores));
    Tensor sink = pool.Zeros({1});
    sink.f32()[0] = 0.7f;
    std::vector<float> p(n);
    auto loss = [&] {
      NormalizeRow(spec, sink.f32()[0], s.f32(), n, p.data());
      double sum = 0;
      for (int64_t j = 0; j < n; ++j) sum += static_cast<double>(p[j]) * r.f32()[j];
      return sum;
    };
    loss();
    const float lse = NormalizeRow(spec, sink.f32()[0], s.f32(), n, p.data());
    if (normalizer == AttentionNormalizer::kClippedSoftmax) {
      for (int64_t j = 0; j < n; ++j) {
        const double y = 1.2 * std::exp(s.f32()[j] - lse) - 0.1;
        ASSERT_TRUE(std::fabs(y) > 0.04 && std::fabs(y - 1) > 0.04) << j;
      }
    }
    Tensor ds = pool.Zeros({n}), dsink = pool.Zeros({1});
    // The clipped row sum through the identity of NormalizeRowBackward (from p, not sm): the
    // finite differences judge it.
    dsink.f32()[0] = NormalizeRowBackward(spec, sink.f32()[0], p.data(), s.f32(), lse,
                                          ClippedRowDot(spec, p, r.f32()), r.f32(), n, ds.f32());
    ExpectGradientMatches("ds", s, ds, loss);
    if (normalizer == AttentionNormalizer::kSinkLogit) {
      ExpectGradientMatches("dsink", sink, dsink, loss);
    }
  }
}

struct KernelCase {
  Tensor q, k, v, sink, out, probs, lse;
  Tensor unclipped;  // [B, S, H, d]
  // unclipped_values for the kernel: the tensor for clipped softmax, else empty.
  Tensor UnclippedFor(const AttentionSpec& spec) const {
    return spec.normalizer == AttentionNormalizer::kClippedSoftmax ? unclipped : Tensor();
  }
};

// q [B, S, H, d]; k, v [B, bias + S, Hkv, d]; sink [H]; the random draws use `stream`.
KernelCase MakeCase(TensorPool& pool, int64_t B, int64_t S, int64_t bias, int64_t H, int64_t Hkv,
                    int64_t d, uint64_t stream) {
  KernelCase c;
  c.q = pool.Random({B, S, H, d}, stream);
  c.k = pool.Random({B, bias + S, Hkv, d}, stream + 1);
  c.v = pool.Random({B, bias + S, Hkv, d}, stream + 2);
  c.sink = pool.Random({H}, stream + 3);
  c.out = pool.Zeros({B, S, H, d});
  c.probs = pool.Zeros({B, H, S, bias + S});
  c.lse = pool.Zeros({B, H, S});
  c.unclipped = pool.Zeros({B, S, H, d});
  return c;
}

// The scaled scores s_ij (double) of query row (b, h, i) over its visible keys j <= bias + i.
std::vector<double> RowScores(const KernelCase& c, const AttentionSpec& spec, int64_t b, int64_t h,
                              int64_t i) {
  const int64_t S = c.q.dim(1), H = c.q.dim(2), d = c.q.dim(3);
  const int64_t K = c.k.dim(1), Hkv = c.k.dim(2), bias = K - S, g = h / (H / Hkv);
  std::vector<double> s(bias + i + 1);
  for (int64_t j = 0; j <= bias + i; ++j) {
    double dot = 0;
    for (int64_t x = 0; x < d; ++x) {
      dot += static_cast<double>(c.q.f32()[((b * S + i) * H + h) * d + x]) *
             c.k.f32()[((b * K + j) * Hkv + g) * d + x];
    }
    s[j] = dot * spec.scale;
  }
  return s;
}

// The smallest distance, over every visible score of the case, to a kink of the normalizer
// (softpick: s = 0; clipped: y = 0 or 1), in double.
double DistanceToKinks(const KernelCase& c, const AttentionSpec& spec) {
  const int64_t B = c.q.dim(0), S = c.q.dim(1), H = c.q.dim(2);
  double closest = 1e30;
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t h = 0; h < H; ++h) {
      for (int64_t i = 0; i < S; ++i) {
        const std::vector<double> s = RowScores(c, spec, b, h, i);
        const double max = *std::max_element(s.begin(), s.end());
        double sum = 0;
        for (double x : s) sum += std::exp(x - max);
        for (double x : s) {
          if (spec.normalizer == AttentionNormalizer::kSoftpick) {
            closest = std::min(closest, std::fabs(x));
          } else {
            const double y =
                (spec.clip_zeta - spec.clip_gamma) * std::exp(x - max) / sum + spec.clip_gamma;
            closest = std::min({closest, std::fabs(y), std::fabs(y - 1)});
          }
        }
      }
    }
  }
  return closest;
}

// L = sum(out * R); eps 1e-3; tolerance 1e-3 + 1e-2 |grad| (unit-normal inputs).
// Softpick and clipped softmax: the case is drawn from the first stream whose scores (and
// clipped softmax's y) sit at least 0.005 from every kink, 5x more than the FD step moves
// them (|ds| <= eps |k| scale ~ 1e-3), so no check straddles a point where the gradient jumps.
void CheckKernelGradients(AttentionNormalizer normalizer, int64_t bias, int64_t H, int64_t Hkv) {
  CpuBackend backend;
  TensorPool pool;
  const int64_t B = 2, S = 5, d = 4;
  const AttentionSpec spec = SpecFor(normalizer, d);
  KernelCase c = MakeCase(pool, B, S, bias, H, Hkv, d, 1);
  if (NormalizerNeedsScores(normalizer)) {
    uint64_t stream = 1;
    while (DistanceToKinks(c, spec) < 0.005 && stream < 400) {
      stream += 4;
      c = MakeCase(pool, B, S, bias, H, Hkv, d, stream);
    }
    ASSERT_GE(DistanceToKinks(c, spec), 0.005) << "no kink-free case found";
  }
  Tensor r = pool.Random({B, S, H, d}, 9);
  auto loss = [&] {
    backend.AttentionForward(c.out, c.probs, c.lse, c.UnclippedFor(spec), c.q, c.k, c.v, c.sink,
                             spec);
    return WeightedSum(c.out, r);
  };
  loss();
  Tensor dq = pool.Zeros({B, S, H, d}), dk = pool.Zeros({B, bias + S, Hkv, d});
  Tensor dv = pool.Zeros({B, bias + S, Hkv, d}), dsink = pool.Zeros({H});
  backend.AttentionBackward(dq, dk, dv, dsink, r, c.q, c.k, c.v, c.sink, c.out,
                            c.UnclippedFor(spec), c.probs, c.lse, spec, GradWrite::kAccumulate);
  const GradCheckOptions options = GradCheckOptions::WithSamples(48);
  ExpectGradientMatches("dq", c.q, dq, loss, options);
  ExpectGradientMatches("dk", c.k, dk, loss, options);
  ExpectGradientMatches("dv", c.v, dv, loss, options);
  if (normalizer == AttentionNormalizer::kSinkLogit) {
    ExpectGradientMatches("dsink_logit", c.sink, dsink, loss, options);
  } else {
    for (int64_t h = 0; h < H; ++h) EXPECT_EQ(dsink.f32()[h], 0.0f);
  }
}

TEST(AttentionNormalizerTest, EveryNormalizerBackwardMatchesFiniteDifferences) {
  for (AttentionNormalizer normalizer : kAllNormalizers) {
    SCOPED_TRACE(static_cast<int>(normalizer));
    CheckKernelGradients(normalizer, /*bias=*/0, /*H=*/4, /*Hkv=*/2);
  }
}

TEST(AttentionNormalizerTest, EveryNormalizerWithABiasKeyMatchesFiniteDifferences) {
  for (AttentionNormalizer normalizer : kAllNormalizers) {
    SCOPED_TRACE(static_cast<int>(normalizer));
    CheckKernelGradients(normalizer, /*bias=*/1, /*H=*/2, /*Hkv=*/1);
  }
}

// GradWrite of AttentionBackward: kAssign over random (non-zero) dq, dk, dv gives exactly
// kAccumulate's result over zeros (every element written, KV-bias keys and GQA groups
// included); kAccumulate over the same garbage adds to it; dsink_logit accumulates either way.
void CheckGradWrite(AttentionNormalizer normalizer, int64_t bias, int64_t H, int64_t Hkv) {
  CpuBackend backend;
  TensorPool pool;
  const int64_t B = 2, S = 5, d = 4, K = bias + S;
  const AttentionSpec spec = SpecFor(normalizer, d);
  KernelCase c = MakeCase(pool, B, S, bias, H, Hkv, d, 31);
  backend.AttentionForward(c.out, c.probs, c.lse, c.UnclippedFor(spec), c.q, c.k, c.v, c.sink,
                           spec);
  const Tensor dout = pool.Random({B, S, H, d}, 35);
  struct Grads {
    Tensor dq, dk, dv, dsink;
  };
  // dq, dk, dv and dsink_logit of one backward, from `start` (random when garbage, else 0).
  const auto backward = [&](GradWrite write, bool garbage, uint64_t stream) {
    const auto start = [&](std::initializer_list<int64_t> shape, uint64_t offset) {
      return garbage ? pool.Random(shape, stream + offset) : pool.Zeros(shape);
    };
    Grads g{start({B, S, H, d}, 0), start({B, K, Hkv, d}, 1), start({B, K, Hkv, d}, 2),
            start({H}, 3)};
    backend.AttentionBackward(g.dq, g.dk, g.dv, g.dsink, dout, c.q, c.k, c.v, c.sink, c.out,
                              c.UnclippedFor(spec), c.probs, c.lse, spec, write);
    return g;
  };
  const Grads zero = backward(GradWrite::kAccumulate, /*garbage=*/false, 0);
  const Grads assigned = backward(GradWrite::kAssign, /*garbage=*/true, 40);
  const Grads added = backward(GradWrite::kAccumulate, /*garbage=*/true, 40);
  const Grads garbage{pool.Random({B, S, H, d}, 40), pool.Random({B, K, Hkv, d}, 41),
                      pool.Random({B, K, Hkv, d}, 42), pool.Random({H}, 43)};
  const auto expect = [](const char* name, const Tensor& got, const Tensor& grad,
                         const Tensor& start, bool exact) {
    SCOPED_TRACE(name);
    for (int64_t i = 0; i < got.numel(); ++i) {
      const float want = grad.f32()[i] + (start.empty() ? 0.0f : start.f32()[i]);
      if (exact) {
        ASSERT_EQ(got.f32()[i], want) << i;
      } else {
        ASSERT_NEAR(got.f32()[i], want, 1e-5f * (1.0f + std::fabs(want))) << i;
      }
    }
  };
  expect("assign dq", assigned.dq, zero.dq, Tensor(), /*exact=*/true);
  expect("assign dk", assigned.dk, zero.dk, Tensor(), true);
  expect("assign dv", assigned.dv, zero.dv, Tensor(), true);
  expect("assign dsink", assigned.dsink, zero.dsink, garbage.dsink, false);
  expect("accumulate dq", added.dq, zero.dq, garbage.dq, false);
  expect("accumulate dk", added.dk, zero.dk, garbage.dk, false);
  expect("accumulate dv", added.dv, zero.dv, garbage.dv, false);
  expect("accumulate dsink", added.dsink, zero.dsink, garbage.dsink, false);
}

TEST(AttentionNormalizerTest, BackwardAssignOverwritesAndAccumulateAdds) {
  for (AttentionNormalizer normalizer : kAllNormalizers) {
    SCOPED_TRACE(static_cast<int>(normalizer));
    CheckGradWrite(normalizer, /*bias=*/0, /*H=*/3, /*Hkv=*/3);  // plain
    CheckGradWrite(normalizer, /*bias=*/0, /*H=*/4, /*Hkv=*/2);  // GQA
    CheckGradWrite(normalizer, /*bias=*/2, /*H=*/4, /*Hkv=*/1);  // KV bias (or prefix) + GQA
  }
}

// The forward's unclipped_values against their definition in double, from the softmax (not
// from p): C_i = sum_j (zeta - gamma) sm_ij [0 < y_ij < 1] v_j, y = (zeta - gamma) sm + gamma.
// With a bias key and grouped-query attention; q scaled by 3 (scores of std 3) so that rows
// clip both at 0 and at 1 (counted).
TEST(AttentionNormalizerTest, ClippedSoftmaxUnclippedValuesMatchTheSoftmaxFormula) {
  CpuBackend backend;
  TensorPool pool;
  const int64_t B = 2, S = 9, bias = 1, H = 4, Hkv = 2, d = 4, K = bias + S;
  const AttentionSpec spec = SpecFor(AttentionNormalizer::kClippedSoftmax, d);
  KernelCase c = MakeCase(pool, B, S, bias, H, Hkv, d, 21);
  for (int64_t i = 0; i < c.q.numel(); ++i) c.q.f32()[i] *= 3.0f;
  backend.AttentionForward(c.out, c.probs, c.lse, c.unclipped, c.q, c.k, c.v, c.sink, spec);
  const double stretch = spec.clip_zeta - spec.clip_gamma;
  int both_ways = 0, inside = 0;  // rows with weights clipped to 0 and to 1; unclipped ones
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t h = 0; h < H; ++h) {
      const int64_t g = h / (H / Hkv);
      for (int64_t i = 0; i < S; ++i) {
        std::vector<double> sm = RowScores(c, spec, b, h, i);
        const double max = *std::max_element(sm.begin(), sm.end());
        double sum = 0;
        for (double& x : sm) sum += (x = std::exp(x - max));
        std::vector<double> want(d, 0.0);
        int row_zero = 0, row_one = 0;
        for (int64_t j = 0; j <= bias + i; ++j) {
          const double y = stretch * sm[j] / sum + spec.clip_gamma;
          row_zero += y <= 0;
          row_one += y >= 1;
          if (y <= 0 || y >= 1) continue;
          ++inside;
          for (int64_t x = 0; x < d; ++x) {
            want[x] += stretch * sm[j] / sum * c.v.f32()[((b * K + j) * Hkv + g) * d + x];
          }
        }
        both_ways += row_zero > 0 && row_one > 0;
        for (int64_t x = 0; x < d; ++x) {
          EXPECT_NEAR(c.unclipped.f32()[((b * S + i) * H + h) * d + x], want[x], 1e-5)
              << b << "," << h << "," << i << "," << x;
        }
      }
    }
  }
  EXPECT_GT(both_ways, 5);  // 16 of the 72 rows
  EXPECT_GT(inside, 20);    // 149
}

// Through the kernel: with q = 0 every score is 0, so row i of softmax1 is 1 / (i + 2) per
// key and that of the sink logit b = ln 3 is 1 / (i + 4); the mask and lse follow.
TEST(AttentionNormalizerTest, KernelRowsOfZeroScoresMatchTheHandFormula) {
  CpuBackend backend;
  TensorPool pool;
  const int64_t S = 4, d = 2;
  KernelCase c = MakeCase(pool, 1, S, 0, 1, 1, d, 5);
  std::memset(c.q.data(), 0, c.q.nbytes());
  c.sink.f32()[0] = std::log(3.0f);
  for (AttentionNormalizer normalizer :
       {AttentionNormalizer::kSoftmax1, AttentionNormalizer::kSinkLogit}) {
    backend.AttentionForward(c.out, c.probs, c.lse, Tensor(), c.q, c.k, c.v, c.sink,
                             SpecFor(normalizer, d));
    const double virtual_weight = normalizer == AttentionNormalizer::kSoftmax1 ? 1.0 : 3.0;
    for (int64_t i = 0; i < S; ++i) {
      const double z = virtual_weight + static_cast<double>(i + 1);
      for (int64_t j = 0; j < S; ++j) {
        EXPECT_NEAR(c.probs.f32()[i * S + j], j <= i ? 1.0 / z : 0.0, 1e-7) << i << "," << j;
      }
      EXPECT_NEAR(c.lse.f32()[i], std::log(z), 1e-6);
    }
  }
}

// Random scores through the kernel: softpick weights are exactly 0 where s <= 0, positive
// where s > 0, and rows sum to less than 1.
TEST(AttentionNormalizerTest, KernelSoftpickZerosMatchTheSignOfTheScores) {
  CpuBackend backend;
  TensorPool pool;
  const int64_t S = 6, d = 4;
  KernelCase c = MakeCase(pool, 1, S, 0, 1, 1, d, 7);
  const AttentionSpec spec = SpecFor(AttentionNormalizer::kSoftpick, d);
  backend.AttentionForward(c.out, c.probs, c.lse, c.UnclippedFor(spec), c.q, c.k, c.v, c.sink,
                           spec);
  int zeros = 0;
  for (int64_t i = 0; i < S; ++i) {
    double sum = 0;
    for (int64_t j = 0; j <= i; ++j) {
      double s = 0;
      for (int64_t x = 0; x < d; ++x) s += c.q.f32()[i * d + x] * c.k.f32()[j * d + x];
      const float p = c.probs.f32()[i * S + j];
      if (s <= 0) {
        EXPECT_EQ(p, 0.0f);
        ++zeros;
      } else {
        EXPECT_GT(p, 0.0f);
      }
      sum += p;
    }
    EXPECT_LT(sum, 1.0);
  }
  EXPECT_GT(zeros, 3);  // the case does exercise the relu
}

// One bias key far above the others takes (almost) all the mass of every row, row 0
// included (it sees the bias key and itself), so out ~ the bias value.
TEST(AttentionNormalizerTest, DominantBiasKeyTakesTheMass) {
  CpuBackend backend;
  TensorPool pool;
  const int64_t S = 5, d = 4;
  KernelCase c = MakeCase(pool, 1, S, /*bias=*/1, 1, 1, d, 11);
  for (int64_t i = 0; i < S; ++i) {  // every query = (1, 1, 1, 1) + noise / 10
    for (int64_t x = 0; x < d; ++x) c.q.f32()[i * d + x] = 1.0f + 0.1f * c.q.f32()[i * d + x];
  }
  for (int64_t x = 0; x < d; ++x) c.k.f32()[x] = 8.0f;  // bias key: s ~ 16 vs O(1)
  backend.AttentionForward(c.out, c.probs, c.lse, Tensor(), c.q, c.k, c.v, c.sink,
                           SpecFor(AttentionNormalizer::kSoftmax, d));
  for (int64_t i = 0; i < S; ++i) {
    EXPECT_GT(c.probs.f32()[i * (S + 1)], 0.999f) << i;
    for (int64_t j = i + 2; j <= S; ++j) EXPECT_EQ(c.probs.f32()[i * (S + 1) + j], 0.0f);
    for (int64_t x = 0; x < d; ++x) {
      EXPECT_NEAR(c.out.f32()[i * d + x], c.v.f32()[x], 0.01) << i;
    }
  }
}

std::vector<float> RunVariant(int threads, AttentionNormalizer normalizer, int64_t bias) {
  omp_set_num_threads(threads);
  CpuBackend backend;
  TensorPool pool;
  const int64_t B = 3, S = 33, H = 4, Hkv = 2, d = 16;
  const AttentionSpec spec = SpecFor(normalizer, d);
  KernelCase c = MakeCase(pool, B, S, bias, H, Hkv, d, 1);
  backend.AttentionForward(c.out, c.probs, c.lse, c.UnclippedFor(spec), c.q, c.k, c.v, c.sink,
                           spec);
  Tensor dq = pool.Zeros({B, S, H, d}), dk = pool.Zeros({B, bias + S, Hkv, d});
  Tensor dv = pool.Zeros({B, bias + S, Hkv, d}), dsink = pool.Zeros({H});
  backend.AttentionBackward(dq, dk, dv, dsink, c.out, c.q, c.k, c.v, c.sink, c.out,
                            c.UnclippedFor(spec), c.probs, c.lse, spec, GradWrite::kAccumulate);
  std::vector<float> all;
  for (const Tensor* t : {&c.out, &c.probs, &c.lse, &c.unclipped, &dq, &dk, &dv, &dsink}) {
    const std::vector<float> v = Values(*t);
    all.insert(all.end(), v.begin(), v.end());
  }
  return all;
}

TEST(AttentionNormalizerTest, EveryVariantIsBitIdenticalForAnyThreadCount) {
  const int saved = omp_get_max_threads();
  for (AttentionNormalizer normalizer : kAllNormalizers) {
    for (int64_t bias : {0, 1}) {
      const std::vector<float> one = RunVariant(1, normalizer, bias);
      const std::vector<float> two = RunVariant(2, normalizer, bias);
      const std::vector<float> three = RunVariant(3, normalizer, bias);
      EXPECT_EQ(0, std::memcmp(one.data(), two.data(), one.size() * sizeof(float)))
          << static_cast<int>(normalizer) << " bias " << bias;
      EXPECT_EQ(0, std::memcmp(one.data(), three.data(), one.size() * sizeof(float)))
          << static_cast<int>(normalizer) << " bias " << bias;
    }
  }
  omp_set_num_threads(saved);
}

}  // namespace
}  // namespace sinklab

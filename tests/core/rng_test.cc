#include "core/rng.h"

#include <cmath>
#include <vector>

#include "gtest/gtest.h"

namespace sinklab {
namespace {

// Known-answer vectors of Philox4x32-10 from Random123's kat_vectors (Salmon et al. 2011).
TEST(PhiloxTest, MatchesRandom123KnownAnswers) {
  struct Case {
    uint32_t counter[4];
    uint64_t key;
    uint32_t expected[4];
  };
  const Case cases[] = {
      {{0, 0, 0, 0}, 0, {0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}},
      {{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu},
       0xffffffffffffffffull,
       {0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}},
      {{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u},
       (uint64_t{0x299f31d0u} << 32) | 0xa4093822u,
       {0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}},
  };
  for (const Case& c : cases) {
    uint32_t out[4];
    Philox4x32_10(c.counter, c.key, out);
    for (int i = 0; i < 4; ++i) EXPECT_EQ(out[i], c.expected[i]) << "word " << i;
  }
}

TEST(RngTest, SameSeedStreamOffsetGivesSameNumbers) {
  Rng a(42, 7), b(42, 7), c(42, 8);
  bool differs_from_other_stream = false;
  for (int i = 0; i < 100; ++i) {
    const float x = a.Uniform();
    EXPECT_EQ(x, b.Uniform());
    differs_from_other_stream |= (x != c.Uniform());
  }
  EXPECT_TRUE(differs_from_other_stream);
  Rng resumed(42, 7, a.offset());
  EXPECT_EQ(resumed.Normal(), a.Normal());
}

TEST(RngTest, UniformInOpenUnitIntervalWithMeanHalf) {
  Rng rng(1, 0);
  double sum = 0;
  const int n = 100000;
  for (int i = 0; i < n; ++i) {
    const float u = rng.Uniform();
    ASSERT_GT(u, 0.0f);
    ASSERT_LT(u, 1.0f);
    sum += u;
  }
  EXPECT_NEAR(sum / n, 0.5, 0.005);
}

TEST(RngTest, NormalHasUnitMomentsAndFillNormalIsIndexed) {
  const int n = 200000;
  std::vector<float> x(n);
  FillNormal(x.data(), n, 0.0f, 1.0f, 3, 5);
  double mean = 0, var = 0;
  for (float v : x) mean += v;
  mean /= n;
  for (float v : x) var += (v - mean) * (v - mean);
  var /= n;
  EXPECT_NEAR(mean, 0.0, 0.01);
  EXPECT_NEAR(var, 1.0, 0.01);
  EXPECT_EQ(x[1234], NormalAt(3, 5, 1234));
}

TEST(RngTest, BelowIsInRangeAndCoversIt) {
  Rng rng(9, 1);
  std::vector<int> counts(7, 0);
  for (int i = 0; i < 7000; ++i) {
    const uint64_t k = rng.Below(7);
    ASSERT_LT(k, 7u);
    counts[k]++;
  }
  for (int c : counts) EXPECT_GT(c, 800);
}

}  // namespace
}  // namespace sinklab

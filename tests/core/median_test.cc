#include "core/median.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace sinklab {
namespace {

// The definition: sort, take the middle one or the mean of the middle two.
double SortedMedian(std::vector<float> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return 0.5 * (static_cast<double>(v[(n - 1) / 2]) + static_cast<double>(v[n / 2]));
}

void ExpectSameMedian(const std::vector<float>& v, const char* what) {
  const double got = Median(v.data(), static_cast<int64_t>(v.size()));
  EXPECT_EQ(got, SortedMedian(v)) << what << ", n " << v.size();
}

TEST(MedianTest, EmptyIsNanAndSmallCountsAreExact) {
  EXPECT_TRUE(std::isnan(Median(nullptr, 0)));
  const std::vector<float> one = {-2.5f}, two = {4.0f, -1.0f}, three = {5, 1, 3},
                           four = {4, 1, 3, 2};
  EXPECT_EQ(Median(one.data(), 1), -2.5);
  EXPECT_EQ(Median(two.data(), 2), 1.5);
  EXPECT_EQ(Median(three.data(), 3), 3.0);
  EXPECT_EQ(Median(four.data(), 4), 2.5);
}

TEST(MedianTest, MatchesSortingOnRandomArrays) {
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  std::uniform_int_distribution<int> small(-3, 3);
  for (const int64_t n : {5, 6, 101, 1000, 4097, 65536, 100001}) {
    std::vector<float> signed_values(n), abs_values(n), ties(n), cluster(n);
    for (int64_t i = 0; i < n; ++i) {
      signed_values[i] = normal(rng);
      abs_values[i] = std::fabs(signed_values[i]);
      ties[i] = static_cast<float>(small(rng));  // few distinct values: ties at the middle
      // One high 16-bit bin: 1 + multiples of 2^-23 below 2^-16 (same sign, exponent, top
      // mantissa bits), so only the low digits tell them apart.
      cluster[i] = 1.0f + static_cast<float>(i % 127) * std::ldexp(1.0f, -23);
    }
    abs_values[0] = 1e4f;  // a massive activation
    ExpectSameMedian(signed_values, "normal");
    ExpectSameMedian(abs_values, "|normal|");
    ExpectSameMedian(ties, "ties");
    ExpectSameMedian(cluster, "one high bin");
  }
}

TEST(MedianTest, MiddleValuesInDifferentBinsAndSpecialValues) {
  // The two middle values 1 and 2 are in different high bins.
  ExpectSameMedian({-5, 1, 2, 9}, "two bins");
  const float inf = std::numeric_limits<float>::infinity();
  const float denormal = std::numeric_limits<float>::denorm_min();
  ExpectSameMedian({inf, -inf, 3, -3}, "infinities");
  ExpectSameMedian({-inf, -inf, inf, 0.5f, 7}, "infinity in the middle");
  ExpectSameMedian({denormal, 3 * denormal, -denormal, 2 * denormal}, "denormals");
  ExpectSameMedian({-0.0f, 0.0f, 1, -1, 0.0f}, "zeros");
}

}  // namespace
}  // namespace sinklab

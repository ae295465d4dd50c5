#include "core/median.h"

#include <cstring>
#include <limits>
#include <vector>

namespace sinklab {
namespace {

constexpr int kDigits = 1 << 16;

// A key whose unsigned order is the float order: negatives have every bit flipped (larger
// magnitude, smaller key), non-negatives only the sign bit set.
uint32_t OrderKey(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, sizeof(bits));
  return (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
}

float FromKey(uint32_t key) {
  const uint32_t bits = (key & 0x80000000u) ? (key & 0x7fffffffu) : ~key;
  float x;
  std::memcpy(&x, &bits, sizeof(x));
  return x;
}

// The digit whose bin holds the rank-th smallest (0-based) of the counted values; rank becomes
// its rank inside that bin.
uint32_t DigitOfRank(const std::vector<int64_t>& histogram, int64_t* rank) {
  uint32_t digit = 0;
  while (*rank >= histogram[digit]) *rank -= histogram[digit++];
  return digit;
}

}  // namespace

double Median(const float* values, int64_t n) {
  if (n <= 0) return std::numeric_limits<double>::quiet_NaN();
  // The ranks of the middle value(s): lo == hi for an odd n.
  int64_t rank[2] = {(n - 1) / 2, n / 2};
  std::vector<int64_t> high(kDigits, 0);
  for (int64_t i = 0; i < n; ++i) ++high[OrderKey(values[i]) >> 16];
  uint32_t high_digit[2];
  for (int r = 0; r < 2; ++r) high_digit[r] = DigitOfRank(high, &rank[r]);
  // Low digits of the values in the (at most two) chosen high bins.
  std::vector<int64_t> low[2] = {std::vector<int64_t>(kDigits, 0),
                                 std::vector<int64_t>(kDigits, 0)};
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t key = OrderKey(values[i]);
    const uint32_t digit = key >> 16;
    if (digit == high_digit[0]) ++low[0][key & 0xffffu];
    if (digit == high_digit[1] && high_digit[1] != high_digit[0]) ++low[1][key & 0xffffu];
  }
  double middle[2];
  for (int r = 0; r < 2; ++r) {
    const std::vector<int64_t>& bin = low[high_digit[r] == high_digit[0] ? 0 : 1];
    middle[r] = FromKey((high_digit[r] << 16) | DigitOfRank(bin, &rank[r]));
  }
  return 0.5 * (middle[0] + middle[1]);
}

}  // namespace sinklab

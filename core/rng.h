// Philox4x32-10 counter-based RNG (Salmon et al. 2011, "Parallel random numbers: as easy
// as 1, 2, 3"). Stateless: the numbers depend only on (seed, stream, index), so the CPU and
// a GPU kernel produce the same values, and saving (seed, offset) saves the generator.
#ifndef SINKLAB_CORE_RNG_H_
#define SINKLAB_CORE_RNG_H_

#include <array>
#include <cstdint>

#include "core/dtype.h"

namespace sinklab {

SL_HOST_DEVICE inline void PhiloxRound(uint32_t ctr[4], const uint32_t key[2]) {
  constexpr uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;
  const uint64_t p0 = static_cast<uint64_t>(kM0) * ctr[0];
  const uint64_t p1 = static_cast<uint64_t>(kM1) * ctr[2];
  const uint32_t hi0 = static_cast<uint32_t>(p0 >> 32), lo0 = static_cast<uint32_t>(p0);
  const uint32_t hi1 = static_cast<uint32_t>(p1 >> 32), lo1 = static_cast<uint32_t>(p1);
  ctr[0] = hi1 ^ ctr[1] ^ key[0];
  ctr[1] = lo1;
  ctr[2] = hi0 ^ ctr[3] ^ key[1];
  ctr[3] = lo0;
}

// Ten rounds with the Weyl key schedule; returns 4 random 32-bit words.
SL_HOST_DEVICE inline void Philox4x32_10(const uint32_t counter[4], uint64_t seed,
                                         uint32_t out[4]) {
  constexpr uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;
  uint32_t key[2] = {static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)};
  for (int i = 0; i < 4; ++i) out[i] = counter[i];
  for (int round = 0; round < 10; ++round) {
    PhiloxRound(out, key);
    key[0] += kW0;
    key[1] += kW1;
  }
}

// Uniform in (0, 1): 24 random bits, centred in their bin so 0 never occurs.
SL_HOST_DEVICE inline float UintToUniform(uint32_t x) {
  return (static_cast<float>(x >> 8) + 0.5f) * (1.0f / 16777216.0f);
}

// Element `index` of stream `stream`: one Philox call per element (simple to mirror on GPU).
SL_HOST_DEVICE inline void PhiloxAt(uint64_t seed, uint64_t stream, uint64_t index,
                                    uint32_t out[4]) {
  const uint32_t counter[4] = {static_cast<uint32_t>(index), static_cast<uint32_t>(index >> 32),
                               static_cast<uint32_t>(stream),
                               static_cast<uint32_t>(stream >> 32)};
  Philox4x32_10(counter, seed, out);
}

float UniformAt(uint64_t seed, uint64_t stream, uint64_t index);
// Standard normal by Box-Muller on the first two words of PhiloxAt.
float NormalAt(uint64_t seed, uint64_t stream, uint64_t index);

// Sequential view: draw i of (seed, stream) is element offset+i. (seed, stream, offset)
// is the whole state (what a checkpoint stores).
class Rng {
 public:
  Rng(uint64_t seed, uint64_t stream, uint64_t offset = 0)
      : seed_(seed), stream_(stream), offset_(offset) {}
  float Uniform() { return UniformAt(seed_, stream_, offset_++); }
  float Normal() { return NormalAt(seed_, stream_, offset_++); }
  uint32_t NextU32() {
    uint32_t out[4];
    PhiloxAt(seed_, stream_, offset_++, out);
    return out[0];
  }
  // Uniform integer in [0, n) (n > 0), by 64-bit multiply-shift.
  uint64_t Below(uint64_t n) {
    uint32_t out[4];
    PhiloxAt(seed_, stream_, offset_++, out);
    const uint64_t r = (static_cast<uint64_t>(out[0]) << 32) | out[1];
    return static_cast<uint64_t>((static_cast<unsigned __int128>(r) * n) >> 64);
  }
  uint64_t seed() const { return seed_; }
  uint64_t stream() const { return stream_; }
  uint64_t offset() const { return offset_; }

 private:
  uint64_t seed_, stream_, offset_;
};

// Fills x[i] = mean + std * NormalAt(seed, stream, i), i in [0, n).
void FillNormal(float* x, int64_t n, float mean, float std, uint64_t seed, uint64_t stream);

}  // namespace sinklab

#endif  // SINKLAB_CORE_RNG_H_

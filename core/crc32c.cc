#include "core/crc32c.h"

#include <array>
#include <cstring>

#if defined(__SSE4_2__)
#include <nmmintrin.h>
#endif

namespace sinklab {
namespace {

constexpr uint32_t kReflectedPolynomial = 0x82F63B78u;

// table[b] = CRC register after shifting byte b through it (reflected, LSB first).
constexpr std::array<uint32_t, 256> MakeTable() {
  std::array<uint32_t, 256> table{};
  for (uint32_t b = 0; b < 256; ++b) {
    uint32_t r = b;
    for (int bit = 0; bit < 8; ++bit) r = (r >> 1) ^ ((r & 1u) ? kReflectedPolynomial : 0u);
    table[b] = r;
  }
  return table;
}

constexpr std::array<uint32_t, 256> kTable = MakeTable();

// Works on the raw register (already complemented).
uint32_t UpdatePortable(uint32_t reg, const uint8_t* p, size_t size) {
  for (size_t i = 0; i < size; ++i) reg = (reg >> 8) ^ kTable[(reg ^ p[i]) & 0xFFu];
  return reg;
}

}  // namespace

uint32_t Crc32cExtendPortable(uint32_t crc, const void* data, size_t size) {
  return ~UpdatePortable(~crc, static_cast<const uint8_t*>(data), size);
}

uint32_t Crc32cExtend(uint32_t crc, const void* data, size_t size) {
#if defined(__SSE4_2__) && defined(__x86_64__)
  // The crc32 instruction implements exactly the Castagnoli polynomial (Intel SDM, CRC32).
  const uint8_t* p = static_cast<const uint8_t*>(data);
  uint64_t reg = ~crc;
  for (; size >= 8; size -= 8, p += 8) {
    uint64_t word;
    std::memcpy(&word, p, 8);  // unaligned, little-endian on x86
    reg = _mm_crc32_u64(reg, word);
  }
  return ~UpdatePortable(static_cast<uint32_t>(reg), p, size);
#else
  return Crc32cExtendPortable(crc, data, size);
#endif
}

}  // namespace sinklab

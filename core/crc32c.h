// CRC-32C (Castagnoli): polynomial 0x1EDC6F41, reflected 0x82F63B78, initial value and final
// XOR 0xFFFFFFFF (RFC 3720, iSCSI, appendix B.4: crc32c("123456789") = 0xE3069283), and
// TFRecord's masked form of it. Table-driven in software; the SSE4.2 crc32 instruction
// computes the same function and is used when the compiler targets it (-march=native).
#ifndef SINKLAB_CORE_CRC32C_H_
#define SINKLAB_CORE_CRC32C_H_

#include <cstddef>
#include <cstdint>

namespace sinklab {

// The CRC-32C of `crc`'s message followed by data[0, size): Crc32cExtend(Crc32c(a), b) ==
// Crc32c(a + b). Crc32cExtend(0, ...) starts a new message.
uint32_t Crc32cExtend(uint32_t crc, const void* data, size_t size);
// The same with the byte-at-a-time table only (the reference the fast path is tested against).
uint32_t Crc32cExtendPortable(uint32_t crc, const void* data, size_t size);

inline uint32_t Crc32c(const void* data, size_t size) { return Crc32cExtend(0, data, size); }

// TFRecord's masked CRC (tensorflow/core/lib/hash/crc32c.h `Mask`): rotate right by 15 bits
// and add a constant, because a CRC of bytes that embed CRCs is weak.
inline constexpr uint32_t kCrc32cMaskDelta = 0xa282ead8u;
inline uint32_t MaskCrc32c(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + kCrc32cMaskDelta; }
inline uint32_t UnmaskCrc32c(uint32_t masked) {
  const uint32_t rotated = masked - kCrc32cMaskDelta;
  return (rotated >> 17) | (rotated << 15);
}

}  // namespace sinklab

#endif  // SINKLAB_CORE_CRC32C_H_

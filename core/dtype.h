// Element types and the bf16 <-> fp32 conversions shared by CPU and GPU code.
#ifndef SINKLAB_CORE_DTYPE_H_
#define SINKLAB_CORE_DTYPE_H_

#include <cstddef>
#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define SL_HOST_DEVICE __host__ __device__
#else
#define SL_HOST_DEVICE
#endif

namespace sinklab {

enum class DType : uint8_t { kF32, kBF16, kI32, kU16, kU32 };

inline size_t DTypeSize(DType dtype) {
  switch (dtype) {
    case DType::kF32: return 4;
    case DType::kBF16: return 2;
    case DType::kI32: return 4;
    case DType::kU16: return 2;
    case DType::kU32: return 4;
  }
  return 0;
}

const char* DTypeName(DType dtype);

// bfloat16 stored as its raw 16 bits (the top half of an IEEE fp32).
struct BF16 {
  uint16_t bits;
};

// Round-to-nearest-even fp32 -> bf16; NaN stays NaN (quiet bit set).
SL_HOST_DEVICE inline BF16 FloatToBF16(float value) {
  uint32_t u;
  memcpy(&u, &value, 4);
  if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x007fffffu) != 0) {
    return BF16{static_cast<uint16_t>((u >> 16) | 0x0040u)};
  }
  const uint32_t rounding_bias = 0x7fffu + ((u >> 16) & 1u);
  return BF16{static_cast<uint16_t>((u + rounding_bias) >> 16)};
}

SL_HOST_DEVICE inline float BF16ToFloat(BF16 value) {
  const uint32_t u = static_cast<uint32_t>(value.bits) << 16;
  float f;
  memcpy(&f, &u, 4);
  return f;
}

}  // namespace sinklab

#endif  // SINKLAB_CORE_DTYPE_H_

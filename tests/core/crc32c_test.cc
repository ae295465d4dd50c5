#include "core/crc32c.h"

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace sinklab {
namespace {

// Bit-at-a-time CRC-32C straight from the definition (reflected polynomial 0x82F63B78, init
// and final XOR 0xFFFFFFFF): an implementation independent of the table under test.
uint32_t BitwiseCrc32c(const std::vector<uint8_t>& bytes) {
  uint32_t reg = 0xFFFFFFFFu;
  for (const uint8_t byte : bytes) {
    reg ^= byte;
    for (int bit = 0; bit < 8; ++bit) reg = (reg >> 1) ^ ((reg & 1u) ? 0x82F63B78u : 0u);
  }
  return ~reg;
}

std::vector<uint8_t> RandomBytes(std::mt19937* rng, size_t size) {
  std::uniform_int_distribution<int> byte(0, 255);
  std::vector<uint8_t> bytes(size);
  for (uint8_t& b : bytes) b = static_cast<uint8_t>(byte(*rng));
  return bytes;
}

TEST(Crc32cTest, MatchesStandardCheckValue) {
  const std::string check = "123456789";
  EXPECT_EQ(Crc32c(check.data(), check.size()), 0xE3069283u);
  EXPECT_EQ(Crc32cExtendPortable(0, check.data(), check.size()), 0xE3069283u);
  EXPECT_EQ(Crc32c(nullptr, 0), 0u);
}

// RFC 3720 (iSCSI), appendix B.4: CRC-32C of 32-byte test patterns.
TEST(Crc32cTest, MatchesRfc3720TestVectors) {
  std::vector<uint8_t> zeros(32, 0x00), ones(32, 0xFF), increasing(32), decreasing(32);
  for (int i = 0; i < 32; ++i) {
    increasing[i] = static_cast<uint8_t>(i);
    decreasing[i] = static_cast<uint8_t>(31 - i);
  }
  EXPECT_EQ(Crc32c(zeros.data(), 32), 0x8A9136AAu);
  EXPECT_EQ(Crc32c(ones.data(), 32), 0x62A8AB43u);
  EXPECT_EQ(Crc32c(increasing.data(), 32), 0x46DD794Eu);
  EXPECT_EQ(Crc32c(decreasing.data(), 32), 0x113FDB5Cu);
}

TEST(Crc32cTest, FastPortableAndBitwiseAgreeOnRandomUnalignedInputs) {
  std::mt19937 rng(20240520);
  for (size_t size = 0; size < 200; ++size) {
    const std::vector<uint8_t> padded = RandomBytes(&rng, size + 7);
    const size_t shift = size % 8;  // start at every alignment
    const std::vector<uint8_t> bytes(padded.begin() + shift, padded.begin() + shift + size);
    const uint32_t expected = BitwiseCrc32c(bytes);
    EXPECT_EQ(Crc32c(padded.data() + shift, size), expected) << "size " << size;
    EXPECT_EQ(Crc32cExtendPortable(0, padded.data() + shift, size), expected) << "size " << size;
  }
}

TEST(Crc32cTest, ExtendEqualsCrcOfConcatenation) {
  std::mt19937 rng(7);
  const std::vector<uint8_t> bytes = RandomBytes(&rng, 301);
  const uint32_t whole = Crc32c(bytes.data(), bytes.size());
  for (size_t split = 0; split <= bytes.size(); split += 17) {
    const uint32_t head = Crc32c(bytes.data(), split);
    EXPECT_EQ(Crc32cExtend(head, bytes.data() + split, bytes.size() - split), whole) << split;
    EXPECT_EQ(Crc32cExtendPortable(head, bytes.data() + split, bytes.size() - split), whole);
  }
}

TEST(Crc32cTest, MaskMatchesTfRecordFormulaAndInverts) {
  // Values worked out separately (Python, from the formula) for the CRCs above.
  EXPECT_EQ(MaskCrc32c(0xE3069283u), 0xC78AB0E5u);
  EXPECT_EQ(MaskCrc32c(0x8A9136AAu), 0x0FD7FFFAu);
  EXPECT_EQ(MaskCrc32c(0u), 0xA282EAD8u);
  std::mt19937 rng(11);
  for (int i = 0; i < 1000; ++i) {
    const uint32_t crc = static_cast<uint32_t>(rng());
    // ((crc >> 15) | (crc << 17)) + 0xa282ead8, evaluated in 64 bits and reduced mod 2^32.
    const uint64_t rotated = (uint64_t{crc} >> 15) | ((uint64_t{crc} << 17) & 0xFFFFFFFFull);
    EXPECT_EQ(MaskCrc32c(crc), static_cast<uint32_t>((rotated + 0xa282ead8ull) & 0xFFFFFFFFull));
    EXPECT_EQ(UnmaskCrc32c(MaskCrc32c(crc)), crc);
  }
}

}  // namespace
}  // namespace sinklab

#include "core/tensor.h"

#include <cmath>
#include <vector>

#include "core/arena.h"
#include "core/dtype.h"
#include "gtest/gtest.h"

namespace sinklab {
namespace {

TEST(BF16Test, RoundsToNearestEven) {
  EXPECT_EQ(FloatToBF16(1.0f).bits, 0x3f80);
  // 1 + 2^-8 is exactly halfway between 1 and 1 + 2^-7: ties go to the even mantissa (1.0).
  EXPECT_EQ(FloatToBF16(1.0f + std::ldexp(1.0f, -8)).bits, 0x3f80);
  // 1 + 3 * 2^-8 is halfway between 1 + 2^-7 (odd) and 1 + 2^-6 (even): rounds up.
  EXPECT_EQ(FloatToBF16(1.0f + 3 * std::ldexp(1.0f, -8)).bits, 0x3f82);
  EXPECT_EQ(BF16ToFloat(FloatToBF16(-2.5f)), -2.5f);
  EXPECT_TRUE(std::isnan(BF16ToFloat(FloatToBF16(std::nanf("")))));
}

TEST(BF16Test, RelativeErrorWithinHalfUlp) {
  for (float x : {3.14159f, -1e-3f, 12345.678f, 7e20f}) {
    const float y = BF16ToFloat(FloatToBF16(x));
    EXPECT_LE(std::fabs(y - x) / std::fabs(x), std::ldexp(1.0f, -8));
  }
}

TEST(TensorTest, ShapeNumelReshapeAndSlice) {
  std::vector<float> storage(24);
  for (int i = 0; i < 24; ++i) storage[i] = static_cast<float>(i);
  Tensor t(storage.data(), DType::kF32, Device::kCpu, {2, 3, 4});
  EXPECT_EQ(t.numel(), 24);
  EXPECT_EQ(t.dim(-1), 4);
  EXPECT_EQ(t.nbytes(), 96u);
  EXPECT_EQ(t.ShapeString(), "[2, 3, 4]");
  Tensor flat = t.Reshaped({6, 4});
  Tensor rows = flat.Slice0(2, 5);
  EXPECT_EQ(rows.dim(0), 3);
  EXPECT_EQ(rows.f32()[0], 8.0f);
  Tensor second = t.Index0(1);
  EXPECT_EQ(second.ShapeString(), "[3, 4]");
  EXPECT_EQ(second.f32()[0], 12.0f);
  EXPECT_EQ(t.Reshaped({2, 12}).Index0(1).ShapeString(), "[12]");
}

TEST(TensorDeathTest, WrongDtypeAccessAndBadReshapeAbort) {
  std::vector<float> storage(6);
  Tensor t(storage.data(), DType::kF32, Device::kCpu, {2, 3});
  EXPECT_DEATH(t.bf16(), "CHECK failed");
  EXPECT_DEATH(t.Reshaped({4, 2}), "CHECK failed");
  EXPECT_DEATH(t.Index0(2), "CHECK failed");
  EXPECT_DEATH(t.Reshaped({6}).Index0(0), "CHECK failed");
}

TEST(ArenaTest, AllocatesZeroedAlignedDisjointTensors) {
  Arena arena(Device::kCpu, 1024);
  Tensor a = arena.Allocate(DType::kF32, {10});
  Tensor b = arena.Allocate(DType::kF32, {1000});  // larger than a block: its own block
  Tensor c = arena.Allocate(DType::kBF16, {3, 5});
  for (const Tensor* t : {&a, &b, &c}) {
    EXPECT_EQ(reinterpret_cast<uintptr_t>(t->data()) % 256, 0u);
    const char* bytes = static_cast<const char*>(t->data());
    for (size_t i = 0; i < t->nbytes(); ++i) ASSERT_EQ(bytes[i], 0);
  }
  a.f32()[9] = 1.0f;
  EXPECT_EQ(b.f32()[0], 0.0f);
  EXPECT_GE(arena.bytes_used(), a.nbytes() + b.nbytes() + c.nbytes());
}

TEST(ArenaDeathTest, AllocateAfterSealAborts) {
  Arena arena;
  arena.Allocate(DType::kF32, {4});
  arena.Seal();
  EXPECT_DEATH(arena.Allocate(DType::kF32, {4}), "after Seal");
}

}  // namespace
}  // namespace sinklab

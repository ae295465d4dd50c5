// The CUDA reductions (layers/cuda/cuda_backend.cu: SumToHost, CountNonNegative, MeanLoss,
// MaxAbsToHost) against the CPU reference on odd sizes (more elements than the 512 x 256
// threads of the partial pass, and fewer), with the extreme value planted at either end.
#if SINKLAB_WITH_CUDA

#include <cmath>
#include <cstdint>
#include <limits>

#include "gtest/gtest.h"
#include "tests/layers/cuda_test_util.h"

namespace sinklab {
namespace {

constexpr int64_t kSizes[] = {1, 37, 131073 + 7, 1000003};

TEST(CudaReductionTest, MaxAbsMatchesTheCpuForBf16AndF32) {
  SL_SKIP_WITHOUT_CUDA();
  for (const int64_t n : kSizes) {
    for (const bool negative_max : {false, true}) {
      GpuTest t;
      Tensor x = t.HostRandom({n}, 1, 1.0f, /*round_bf16=*/true, /*mean=*/0.3f);
      const int64_t at = negative_max ? 0 : n - 1;  // a planted extreme, either sign
      x.f32()[at] = negative_max ? -9.5f : 9.25f;
      const double want = t.cpu().MaxAbsToHost(x);
      ASSERT_EQ(want, negative_max ? 9.5 : 9.25);
      EXPECT_EQ(t.gpu().MaxAbsToHost(t.ToDevice(x, DType::kF32)), want) << n;
      EXPECT_EQ(t.gpu().MaxAbsToHost(t.ToDevice(x, DType::kBF16)), want) << n;  // bf16-exact
    }
  }
}

TEST(CudaReductionTest, MaxAbsSkipsNaNLikeTheCpu) {
  SL_SKIP_WITHOUT_CUDA();
  GpuTest t;
  Tensor x = t.HostRandom({1001}, 2);
  x.f32()[500] = std::numeric_limits<float>::quiet_NaN();
  const double want = t.cpu().MaxAbsToHost(x);
  EXPECT_TRUE(std::isfinite(want));
  EXPECT_EQ(t.gpu().MaxAbsToHost(t.ToDevice(x, DType::kF32)), want);
}

TEST(CudaReductionTest, SumAndCountMatchTheCpu) {
  SL_SKIP_WITHOUT_CUDA();
  for (const int64_t n : kSizes) {
    GpuTest t;
    const Tensor x = t.HostRandom({n}, 3, 1.0f, /*round_bf16=*/false, /*mean=*/0.5f);
    const double want = t.cpu().SumToHost(x);
    EXPECT_NEAR(t.gpu().SumToHost(t.ToDevice(x, DType::kF32)), want, 1e-9 * n + 1e-9) << n;
    Tensor ids = t.HostZeros(DType::kI32, {n});
    for (int64_t i = 0; i < n; ++i) ids.i32()[i] = x.f32()[i] < 0.0f ? -1 : static_cast<int32_t>(i);
    const int64_t count = t.cpu().CountNonNegative(ids);
    ASSERT_GT(count, 0);
    EXPECT_EQ(t.gpu().CountNonNegative(t.ToDevice(ids, DType::kI32)), count) << n;
  }
}

// The mean loss left on the device (training's per-step loss) against the CPU's, with
// ignored targets among the counted ones, and 0 when none counts.
TEST(CudaReductionTest, MeanLossMatchesTheCpu) {
  SL_SKIP_WITHOUT_CUDA();
  for (const int64_t n : {int64_t{1}, int64_t{37}, int64_t{16384 + 5}}) {
    GpuTest t;
    const Tensor losses = t.HostRandom({n}, 4, 1.0f, /*round_bf16=*/false, /*mean=*/3.0f);
    Tensor ids = t.HostZeros(DType::kI32, {n});
    for (int64_t i = 0; i < n; ++i) ids.i32()[i] = i % 7 == 3 ? -1 : static_cast<int32_t>(i);
    Tensor want = t.HostZeros(DType::kF32, {1});
    t.cpu().MeanLoss(want, losses, ids);
    const Tensor out = t.ToDevice(t.HostRandom({1}, 5), DType::kF32);
    t.gpu().MeanLoss(out, t.ToDevice(losses, DType::kF32), t.ToDevice(ids, DType::kI32));
    EXPECT_NEAR(t.ToHostF32(out)[0], want.f32()[0], 1e-6f * std::fabs(want.f32()[0])) << n;
    for (int64_t i = 0; i < n; ++i) ids.i32()[i] = -1;
    t.gpu().MeanLoss(out, t.ToDevice(losses, DType::kF32), t.ToDevice(ids, DType::kI32));
    EXPECT_EQ(t.ToHostF32(out)[0], 0.0f) << n;
  }
}

}  // namespace
}  // namespace sinklab

#endif  // SINKLAB_WITH_CUDA

// The CUDA RMSNorm and RoPE kernels (layers/cuda/rmsnorm.cu, rope.cu) against the CPU
// reference at odd shapes: forward, backward accumulation into nonzero gradients, gradient
// outputs left empty, RoPE in place, and fp32 activations; QK-norm then RoPE in one pass.
#if SINKLAB_WITH_CUDA

#include <cmath>
#include <cstdint>
#include <ostream>
#include <vector>

#include "gtest/gtest.h"
#include "tests/layers/cuda_test_util.h"

namespace sinklab {
namespace {

struct NormShape {
  int64_t rows, dim;
};
void PrintTo(const NormShape& s, std::ostream* os) { *os << s.rows << " x " << s.dim; }

class CudaRmsNormTest : public ::testing::TestWithParam<NormShape> {};

TEST_P(CudaRmsNormTest, ForwardMatchesTheCpu) {
  SL_SKIP_WITHOUT_CUDA();
  const NormShape s = GetParam();
  GpuTest t;
  const float eps = 1e-5f;
  const Tensor inp = t.HostRandom({s.rows, s.dim}, 1, 2.0f, true, 0.5f);
  const Tensor weight = t.HostRandom({s.dim}, 2, 0.5f, true, 1.0f);
  Tensor out = t.HostZeros(DType::kF32, {s.rows, s.dim});
  Tensor rstd = t.HostZeros(DType::kF32, {s.rows});
  t.cpu().RmsNormForward(out, rstd, inp, weight, eps);

  const Tensor g_out = t.DeviceZeros(DType::kBF16, {s.rows, s.dim});
  const Tensor g_rstd = t.DeviceZeros(DType::kF32, {s.rows});
  t.gpu().RmsNormForward(g_out, g_rstd, t.ToDevice(inp, DType::kBF16),
                         t.ToDevice(weight, DType::kBF16), eps);
  EXPECT_LT(GpuTest::RelError(t.ToHostF32(g_out), out), kBf16RelTol);
  EXPECT_LT(GpuTest::RelError(t.ToHostF32(g_rstd), rstd), kF32RelTol);
}

TEST_P(CudaRmsNormTest, BackwardAddsTheCpuGradients) {
  SL_SKIP_WITHOUT_CUDA();
  const NormShape s = GetParam();
  GpuTest t;
  const Tensor inp = t.HostRandom({s.rows, s.dim}, 1, 2.0f, true, 0.5f);
  const Tensor weight = t.HostRandom({s.dim}, 2, 0.5f, true, 1.0f);
  const Tensor dout = t.HostRandom({s.rows, s.dim}, 3);
  Tensor out = t.HostZeros(DType::kF32, {s.rows, s.dim});
  Tensor rstd = t.HostZeros(DType::kF32, {s.rows});
  t.cpu().RmsNormForward(out, rstd, inp, weight, 1e-5f);
  const Tensor dinp0 = t.HostRandom({s.rows, s.dim}, 4, 0.5f);
  const Tensor dweight0 = t.HostRandom({s.dim}, 5, 1.0f, /*round_bf16=*/false);
  Tensor dinp = t.HostCopy(dinp0), dweight = t.HostCopy(dweight0);
  t.cpu().RmsNormBackward(dinp, dweight, dout, inp, weight, rstd, GradWrite::kAccumulate);

  const Tensor g_inp = t.ToDevice(inp, DType::kBF16), g_weight = t.ToDevice(weight, DType::kBF16);
  const Tensor g_dout = t.ToDevice(dout, DType::kBF16), g_rstd = t.ToDevice(rstd, DType::kF32);
  const Tensor g_dinp = t.ToDevice(dinp0, DType::kBF16);
  const Tensor g_dweight = t.ToDevice(dweight0, DType::kF32);
  t.gpu().RmsNormBackward(g_dinp, g_dweight, g_dout, g_inp, g_weight, g_rstd,
                          GradWrite::kAccumulate);
  EXPECT_LT(GpuTest::RelError(t.ToHostF32(g_dinp), dinp), kBf16RelTol);
  EXPECT_LT(GpuTest::RelError(t.ToHostF32(g_dweight), dweight), kF32RelTol);

  // Each gradient alone (the other empty; separate kernels): dinp the same bits as both
  // together, dweight the CPU's too (summed in another order where both ran fused).
  const Tensor g_dinp_only = t.ToDevice(dinp0, DType::kBF16);
  t.gpu().RmsNormBackward(g_dinp_only, Tensor(), g_dout, g_inp, g_weight, g_rstd,
                          GradWrite::kAccumulate);
  EXPECT_EQ(t.ToHostF32(g_dinp_only), t.ToHostF32(g_dinp));
  const Tensor g_dweight_only = t.ToDevice(dweight0, DType::kF32);
  t.gpu().RmsNormBackward(Tensor(), g_dweight_only, g_dout, g_inp, g_weight, g_rstd,
                          GradWrite::kAccumulate);
  EXPECT_LT(GpuTest::RelError(t.ToHostF32(g_dweight_only), dweight), kF32RelTol);
  // Both again with kAssign: dinp overwritten, dweight accumulated once more.
  Tensor assigned_both = t.HostCopy(dinp0), dweight_twice = t.HostCopy(dweight);
  t.cpu().RmsNormBackward(assigned_both, dweight_twice, dout, inp, weight, rstd,
                          GradWrite::kAssign);
  const Tensor g_assigned_both = t.ToDevice(dinp0, DType::kBF16);
  t.gpu().RmsNormBackward(g_assigned_both, g_dweight, g_dout, g_inp, g_weight, g_rstd,
                          GradWrite::kAssign);
  EXPECT_LT(GpuTest::RelError(t.ToHostF32(g_assigned_both), assigned_both), kBf16RelTol);
  EXPECT_LT(GpuTest::RelError(t.ToHostF32(g_dweight), dweight_twice), kF32RelTol);

  // kAssign overwrites dinp (its old values are not read): the CPU's assigned gradient.
  Tensor assigned = t.HostCopy(dinp0);
  t.cpu().RmsNormBackward(assigned, Tensor(), dout, inp, weight, rstd, GradWrite::kAssign);
  const Tensor g_assigned = t.ToDevice(dinp0, DType::kBF16);
  t.gpu().RmsNormBackward(g_assigned, Tensor(), g_dout, g_inp, g_weight, g_rstd,
                          GradWrite::kAssign);
  EXPECT_LT(GpuTest::RelError(t.ToHostF32(g_assigned), assigned), kBf16RelTol);
}

// dim 96, 200, 64, 24: 16-byte packets; 100, 12: scalar. Lanes per row: 16 (96, 12), 32
// (100, 200), 8 (64: 4 rows per warp, 387 rows leave a partial warp), 4 (24, of which 3 hold
// data). 37 and 101 rows: dweight in one pass; 387 rows of 64 (QK-norm-like) and 2000 rows of
// 200: dweight over row splits plus the ordered reduction. Fused dinp + dweight (D = P x 32
// lanes x 8): 64 (P 1, 8 lanes), 512 (P 2), 768 (P 3; 5000 rows: more rows than the capped
// grid's row groups, so warps take several) and 1024 (P 4).
INSTANTIATE_TEST_SUITE_P(Shapes, CudaRmsNormTest,
                         ::testing::Values(NormShape{37, 96}, NormShape{37, 100},
                                           NormShape{3 * 129, 64}, NormShape{2000, 200},
                                           NormShape{101, 24}, NormShape{37, 12},
                                           NormShape{45, 512}, NormShape{5000, 768},
                                           NormShape{37, 1024}));

TEST(CudaRmsNormTest, Fp32ActivationsMatchTheCpu) {
  SL_SKIP_WITHOUT_CUDA();
  GpuTest t;
  const int64_t rows = 41, dim = 96;
  const Tensor inp = t.HostRandom({rows, dim}, 1, 1.0f, false);
  const Tensor weight = t.HostRandom({dim}, 2, 0.5f, false, 1.0f);
  const Tensor dout = t.HostRandom({rows, dim}, 3, 1.0f, false);
  Tensor out = t.HostZeros(DType::kF32, {rows, dim});
  Tensor rstd = t.HostZeros(DType::kF32, {rows});
  Tensor dinp = t.HostZeros(DType::kF32, {rows, dim}), dweight = t.HostZeros(DType::kF32, {dim});
  t.cpu().RmsNormForward(out, rstd, inp, weight, 1e-6f);
  t.cpu().RmsNormBackward(dinp, dweight, dout, inp, weight, rstd, GradWrite::kAccumulate);

  const Tensor g_inp = t.ToDevice(inp, DType::kF32), g_weight = t.ToDevice(weight, DType::kF32);
  const Tensor g_out = t.DeviceZeros(DType::kF32, {rows, dim});
  const Tensor g_rstd = t.DeviceZeros(DType::kF32, {rows});
  const Tensor g_dinp = t.DeviceZeros(DType::kF32, {rows, dim});
  const Tensor g_dweight = t.DeviceZeros(DType::kF32, {dim});
  t.gpu().RmsNormForward(g_out, g_rstd, g_inp, g_weight, 1e-6f);
  t.gpu().RmsNormBackward(g_dinp, g_dweight, t.ToDevice(dout, DType::kF32), g_inp, g_weight, g_rstd,
                          GradWrite::kAccumulate);
  EXPECT_LT(GpuTest::RelError(t.ToHostF32(g_out), out), kF32RelTol);
  EXPECT_LT(GpuTest::RelError(t.ToHostF32(g_dinp), dinp), kF32RelTol);
  EXPECT_LT(GpuTest::RelError(t.ToHostF32(g_dweight), dweight), kF32RelTol);
}

// ---- RoPE --------------------------------------------------------------------------------

struct RopeShape {
  int64_t batch, seq, heads, head_dim;
};
void PrintTo(const RopeShape& s, std::ostream* os) {
  *os << "[" << s.batch << ", " << s.seq << ", " << s.heads << ", " << s.head_dim << "]";
}

// cos/sin tables [max_seq, d/2] f32 as layers/rope.h builds them: angle t * base^(-2i/d).
void RopeTables(const Tensor& cos, const Tensor& sin, int64_t head_dim) {
  const int64_t half = head_dim / 2, max_seq = cos.numel() / half;
  for (int64_t t = 0; t < max_seq; ++t) {
    for (int64_t i = 0; i < half; ++i) {
      const double angle = t * std::pow(10000.0, -2.0 * i / head_dim);
      cos.f32()[t * half + i] = static_cast<float>(std::cos(angle));
      sin.f32()[t * half + i] = static_cast<float>(std::sin(angle));
    }
  }
}

class CudaRopeTest : public ::testing::TestWithParam<RopeShape> {};

TEST_P(CudaRopeTest, ForwardMatchesTheCpuAlsoInPlace) {
  SL_SKIP_WITHOUT_CUDA();
  const RopeShape s = GetParam();
  GpuTest t;
  const int64_t half = s.head_dim / 2, max_seq = s.seq + 13;  // tables longer than T
  Tensor cos = t.HostZeros(DType::kF32, {max_seq, half});
  Tensor sin = t.HostZeros(DType::kF32, {max_seq, half});
  RopeTables(cos, sin, s.head_dim);
  const Tensor inp = t.HostRandom({s.batch, s.seq, s.heads, s.head_dim}, 1);
  Tensor out = t.HostZeros(DType::kF32, {s.batch, s.seq, s.heads, s.head_dim});
  t.cpu().RopeForward(out, inp, cos, sin);

  const Tensor g_cos = t.ToDevice(cos, DType::kF32), g_sin = t.ToDevice(sin, DType::kF32);
  const Tensor g_inp = t.ToDevice(inp, DType::kBF16);
  const Tensor g_out = t.DeviceZeros(DType::kBF16, {s.batch, s.seq, s.heads, s.head_dim});
  t.gpu().RopeForward(g_out, g_inp, g_cos, g_sin);
  EXPECT_LT(GpuTest::RelError(t.ToHostF32(g_out), out), kBf16RelTol);
  t.gpu().RopeForward(g_inp, g_inp, g_cos, g_sin);  // in place
  EXPECT_EQ(t.ToHostF32(g_inp), t.ToHostF32(g_out));
}

TEST_P(CudaRopeTest, BackwardAddsTheInverseRotation) {
  SL_SKIP_WITHOUT_CUDA();
  const RopeShape s = GetParam();
  GpuTest t;
  const int64_t half = s.head_dim / 2;
  Tensor cos = t.HostZeros(DType::kF32, {s.seq, half});
  Tensor sin = t.HostZeros(DType::kF32, {s.seq, half});
  RopeTables(cos, sin, s.head_dim);
  const Tensor dout = t.HostRandom({s.batch, s.seq, s.heads, s.head_dim}, 2);
  const Tensor dinp0 = t.HostRandom({s.batch, s.seq, s.heads, s.head_dim}, 3);
  Tensor dinp = t.HostCopy(dinp0);
  t.cpu().RopeBackward(dinp, dout, cos, sin, GradWrite::kAccumulate);
  Tensor assigned = t.HostCopy(dinp0);
  t.cpu().RopeBackward(assigned, dout, cos, sin, GradWrite::kAssign);

  const Tensor g_dout = t.ToDevice(dout, DType::kBF16);
  const Tensor g_cos = t.ToDevice(cos, DType::kF32), g_sin = t.ToDevice(sin, DType::kF32);
  const Tensor g_dinp = t.ToDevice(dinp0, DType::kBF16);
  t.gpu().RopeBackward(g_dinp, g_dout, g_cos, g_sin, GradWrite::kAccumulate);
  EXPECT_LT(GpuTest::RelError(t.ToHostF32(g_dinp), dinp), kBf16RelTol);
  const Tensor g_assigned = t.ToDevice(dinp0, DType::kBF16);
  t.gpu().RopeBackward(g_assigned, g_dout, g_cos, g_sin, GradWrite::kAssign);
  EXPECT_LT(GpuTest::RelError(t.ToHostF32(g_assigned), assigned), kBf16RelTol);
}

// head dims 64 and 128: 16-byte packets; 20 (half 10): scalar.
INSTANTIATE_TEST_SUITE_P(Shapes, CudaRopeTest,
                         ::testing::Values(RopeShape{2, 37, 3, 64}, RopeShape{1, 37, 2, 128},
                                           RopeShape{3, 29, 2, 20}));

// QK-norm then RoPE (Backend::RmsNormRopeForward / Backward; CudaBackend fuses them for
// head dims 64 and 128) against the CPU's two passes: out and rstd; dinp written over nonzero
// values and dweight added to a nonzero start.
class CudaRmsNormRopeTest : public ::testing::TestWithParam<RopeShape> {};

TEST_P(CudaRmsNormRopeTest, ForwardAndBackwardMatchTheCpusTwoPasses) {
  SL_SKIP_WITHOUT_CUDA();
  const RopeShape s = GetParam();
  GpuTest t;
  const int64_t d = s.head_dim, half = d / 2, max_seq = s.seq + 5;
  const int64_t rows = s.batch * s.seq * s.heads;
  const auto random = [&](uint64_t stream, float std) {
    return t.HostRandom({s.batch, s.seq, s.heads, d}, stream, std);
  };
  const auto zeros = [&](DType dtype, bool device) {
    return device ? t.DeviceZeros(dtype, {s.batch, s.seq, s.heads, d})
                  : t.HostZeros(dtype, {s.batch, s.seq, s.heads, d});
  };
  Tensor cos = t.HostZeros(DType::kF32, {max_seq, half});
  Tensor sin = t.HostZeros(DType::kF32, {max_seq, half});
  RopeTables(cos, sin, d);
  const Tensor inp = random(4, 2.0f);
  const Tensor weight = t.HostRandom({d}, 5, 0.5f, true, 1.0f);  // gains around 1
  const Tensor dout = random(6, 1.0f);
  Tensor out = zeros(DType::kF32, false), rstd = t.HostZeros(DType::kF32, {rows});
  t.cpu().RmsNormRopeForward(out, rstd, inp, weight, 1e-6f, cos, sin);
  Tensor dinp = zeros(DType::kF32, false), scratch = zeros(DType::kF32, false);
  Tensor dweight = t.HostZeros(DType::kF32, {d});
  t.cpu().RmsNormRopeBackward(dinp, dweight, dout, inp, weight, rstd, cos, sin, scratch);

  const Tensor g_cos = t.ToDevice(cos, DType::kF32), g_sin = t.ToDevice(sin, DType::kF32);
  const Tensor g_inp = t.ToDevice(inp, DType::kBF16), g_weight = t.ToDevice(weight, DType::kBF16);
  const Tensor g_out = zeros(DType::kBF16, true);
  const Tensor g_rstd = t.DeviceZeros(DType::kF32, {rows});
  t.gpu().RmsNormRopeForward(g_out, g_rstd, g_inp, g_weight, 1e-6f, g_cos, g_sin);
  EXPECT_LT(GpuTest::RelError(t.ToHostF32(g_out), out), kBf16RelTol) << "out";
  EXPECT_LT(GpuTest::RelError(t.ToHostF32(g_rstd), rstd), kBf16RelTol) << "rstd";

  const Tensor g_dinp = t.ToDevice(random(7, 1.0f), DType::kBF16);  // overwritten
  const Tensor dweight0 = t.HostRandom({d}, 8, Rms(dweight));
  const Tensor g_dweight = t.ToDevice(dweight0, DType::kF32);
  const Tensor g_scratch = zeros(DType::kBF16, true);
  t.gpu().RmsNormRopeBackward(g_dinp, g_dweight, t.ToDevice(dout, DType::kBF16), g_inp, g_weight,
                              g_rstd, g_cos, g_sin, g_scratch);
  EXPECT_LT(GpuTest::RelError(t.ToHostF32(g_dinp), dinp), kBf16RelTol) << "dinp";
  EXPECT_LT(GpuTest::RelError(Minus(t.ToHostF32(g_dweight), dweight0), dweight), kBf16RelTol)
      << "dweight";
}

// head dims 64 and 128: fused; 20: the default's two passes.
INSTANTIATE_TEST_SUITE_P(Shapes, CudaRmsNormRopeTest,
                         ::testing::Values(RopeShape{2, 37, 3, 64}, RopeShape{1, 37, 2, 128},
                                           RopeShape{2, 300, 5, 64}, RopeShape{3, 29, 2, 20}));

}  // namespace
}  // namespace sinklab

#endif  // SINKLAB_WITH_CUDA

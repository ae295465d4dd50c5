// The cuBLASLt matmuls of CudaBackend against the CPU reference: forward, and the backward's
// accumulation into bf16 input gradients and fp32 weight gradients, at odd shapes (narrow
// layers, 12 or 50 outputs, on padded rows); the algorithm timing of a problem's first call,
// with and without SINKLAB_GEMM_AUTOTUNE.
#if SINKLAB_WITH_CUDA

#include <cstdlib>
#include <vector>

#include "gtest/gtest.h"
#include "tests/layers/cuda_test_util.h"

namespace sinklab {
namespace {

struct MatmulShape {
  int64_t batch, rows, in, out;  // inp [batch, rows, in], weight [out, in]
};

class CudaMatmulTest : public ::testing::TestWithParam<MatmulShape> {};

TEST_P(CudaMatmulTest, ForwardAndBackwardMatchTheCpuReference) {
  SL_SKIP_WITHOUT_CUDA();
  const MatmulShape s = GetParam();
  GpuTest t;
  const Tensor inp = t.HostRandom({s.batch, s.rows, s.in}, 1);
  const Tensor weight = t.HostRandom({s.out, s.in}, 2, 0.05f);
  const Tensor dout = t.HostRandom({s.batch, s.rows, s.out}, 3);
  // Nonzero starting gradients: dweight's are added to, dinp's kept or overwritten.
  const Tensor dinp0 = t.HostRandom({s.batch, s.rows, s.in}, 4);
  const Tensor dweight0 = t.HostRandom({s.out, s.in}, 5, 1.0f, /*round_bf16=*/false);

  for (const GradWrite write : {GradWrite::kAccumulate, GradWrite::kAssign}) {
    Tensor out = t.HostZeros(DType::kF32, {s.batch, s.rows, s.out});
    Tensor dinp = t.HostCopy(dinp0), dweight = t.HostCopy(dweight0);
    t.cpu().MatmulForward(out, inp, weight, /*residual=*/Tensor());
    t.cpu().MatmulBackward(dinp, dweight, dout, inp, weight, write);

    const Tensor g_inp = t.ToDevice(inp, DType::kBF16), g_weight = t.ToDevice(weight, DType::kBF16);
    const Tensor g_dout = t.ToDevice(dout, DType::kBF16);
    const Tensor g_out = t.DeviceZeros(DType::kBF16, {s.batch, s.rows, s.out});
    const Tensor g_dinp = t.ToDevice(dinp0, DType::kBF16);
    const Tensor g_dweight = t.ToDevice(dweight0, DType::kF32);
    t.gpu().MatmulForward(g_out, g_inp, g_weight, /*residual=*/Tensor());
    t.gpu().MatmulBackward(g_dinp, g_dweight, g_dout, g_inp, g_weight, write);

    const char* mode = write == GradWrite::kAssign ? "assign" : "accumulate";
    EXPECT_LT(GpuTest::RelError(t.ToHostF32(g_out), out), kBf16RelTol) << mode;
    EXPECT_LT(GpuTest::RelError(t.ToHostF32(g_dinp), dinp), kBf16RelTol) << mode;
    EXPECT_LT(GpuTest::RelError(t.ToHostF32(g_dweight), dweight), kF32RelTol) << mode;
  }
}

// out = residual + inp W^T (the block's fused residual add), out of place and in place.
TEST_P(CudaMatmulTest, ResidualEntersThroughTheEpilogue) {
  SL_SKIP_WITHOUT_CUDA();
  const MatmulShape s = GetParam();
  GpuTest t;
  const Tensor inp = t.HostRandom({s.batch, s.rows, s.in}, 1);
  const Tensor weight = t.HostRandom({s.out, s.in}, 2, 0.05f);
  const Tensor residual = t.HostRandom({s.batch, s.rows, s.out}, 6, 3.0f);
  Tensor out = t.HostZeros(DType::kF32, {s.batch, s.rows, s.out});
  t.cpu().MatmulForward(out, inp, weight, residual);

  const Tensor g_inp = t.ToDevice(inp, DType::kBF16), g_weight = t.ToDevice(weight, DType::kBF16);
  const Tensor g_residual = t.ToDevice(residual, DType::kBF16);
  const Tensor g_out = t.ToDevice(t.HostRandom({s.batch, s.rows, s.out}, 7), DType::kBF16);
  t.gpu().MatmulForward(g_out, g_inp, g_weight, g_residual);
  EXPECT_LT(GpuTest::RelError(t.ToHostF32(g_out), out), kBf16RelTol);
  const Tensor g_in_place = t.ToDevice(residual, DType::kBF16);
  t.gpu().MatmulForward(g_in_place, g_inp, g_weight, g_in_place);
  EXPECT_LT(GpuTest::RelError(t.ToHostF32(g_in_place), out), kBf16RelTol);
}

// Each test runs in its own process, so every call here is its problem's first: GemmLt
// times the heuristic's candidates on the call's own operands (several for the larger
// shapes) before the real run. The accumulating calls (dweight +=, the in-place residual)
// then show the timing runs left no trace: d is what one call gives.
INSTANTIATE_TEST_SUITE_P(Shapes, CudaMatmulTest,
                         ::testing::Values(MatmulShape{1, 37, 96, 50}, MatmulShape{3, 29, 128, 264},
                                           MatmulShape{2, 130, 200, 384},
                                           MatmulShape{2, 512, 256, 768},
                                           // Narrow: padded rows (12 and 50 outputs).
                                           MatmulShape{3, 300, 768, 12}));

TEST(CudaMatmulTest, EmptyInputGradientIsSkipped) {
  SL_SKIP_WITHOUT_CUDA();
  GpuTest t;
  const Tensor inp = t.HostRandom({37, 64}, 1), weight = t.HostRandom({48, 64}, 2, 0.1f);
  const Tensor dout = t.HostRandom({37, 48}, 3);
  Tensor dweight = t.HostZeros(DType::kF32, {48, 64});
  t.cpu().MatmulBackward(Tensor(), dweight, dout, inp, weight, GradWrite::kAssign);
  const Tensor g_dweight = t.DeviceZeros(DType::kF32, {48, 64});
  t.gpu().MatmulBackward(Tensor(), g_dweight, t.ToDevice(dout, DType::kBF16),
                         t.ToDevice(inp, DType::kBF16), t.ToDevice(weight, DType::kBF16),
                         GradWrite::kAssign);
  EXPECT_LT(GpuTest::RelError(t.ToHostF32(g_dweight), dweight), kF32RelTol);
}

// Grouped projections (one input, G adjacent weights: gate|up, Q|K|V) as one batched GEMM
// with the input shared by the batch: outputs and accumulated weight gradients against the
// CPU reference (MatmulForward / MatmulBackward per layer).
TEST(CudaMatmulTest, GroupedProjectionsMatchTheCpu) {
  SL_SKIP_WITHOUT_CUDA();
  GpuTest t;
  for (const int64_t g : {2, 3}) {
    const int64_t n = 300, c = 256, oc = 192;
    const Tensor inp = t.HostRandom({3, n / 3, c}, 1);
    const Tensor weights = t.HostRandom({g, oc, c}, 2, 0.05f);
    const Tensor douts = t.HostRandom({g, n, oc}, 3);
    const Tensor dweights0 = t.HostRandom({g, oc, c}, 4, 1.0f, /*round_bf16=*/false);
    Tensor outs = t.HostZeros(DType::kF32, {g, n, oc}), dweights = t.HostCopy(dweights0);
    t.cpu().MatmulForwardGroup(outs, inp, weights);
    t.cpu().MatmulWeightGradGroup(dweights, douts, inp);

    const Tensor g_inp = t.ToDevice(inp, DType::kBF16);
    const Tensor g_outs = t.ToDevice(t.HostRandom({g, n, oc}, 5), DType::kBF16);  // overwritten
    const Tensor g_dweights = t.ToDevice(dweights0, DType::kF32);
    t.gpu().MatmulForwardGroup(g_outs, g_inp, t.ToDevice(weights, DType::kBF16));
    t.gpu().MatmulWeightGradGroup(g_dweights, t.ToDevice(douts, DType::kBF16), g_inp);
    EXPECT_LT(GpuTest::RelError(t.ToHostF32(g_outs), outs), kBf16RelTol) << "G " << g;
    EXPECT_LT(GpuTest::RelError(t.ToHostF32(g_dweights), dweights), kF32RelTol) << "G " << g;
  }
}

// With SINKLAB_GEMM_AUTOTUNE=0 (the heuristic's first algorithm, no timing runs) the
// products match the CPU too.
TEST(CudaMatmulTest, HeuristicChoiceWithoutAutotuneMatchesTheCpu) {
  SL_SKIP_WITHOUT_CUDA();
  setenv("SINKLAB_GEMM_AUTOTUNE", "0", 1);
  GpuTest t;
  const Tensor inp = t.HostRandom({300, 256}, 1), weight = t.HostRandom({192, 256}, 2, 0.05f);
  const Tensor dout = t.HostRandom({300, 192}, 3);
  const Tensor dweight0 = t.HostRandom({192, 256}, 4, 1.0f, /*round_bf16=*/false);
  Tensor out = t.HostZeros(DType::kF32, {300, 192}), dweight = t.HostCopy(dweight0);
  t.cpu().MatmulForward(out, inp, weight, Tensor());
  t.cpu().MatmulBackward(Tensor(), dweight, dout, inp, weight, GradWrite::kAssign);
  const Tensor g_inp = t.ToDevice(inp, DType::kBF16), g_weight = t.ToDevice(weight, DType::kBF16);
  const Tensor g_out = t.DeviceZeros(DType::kBF16, {300, 192});
  const Tensor g_dweight = t.ToDevice(dweight0, DType::kF32);
  t.gpu().MatmulForward(g_out, g_inp, g_weight, Tensor());
  t.gpu().MatmulBackward(Tensor(), g_dweight, t.ToDevice(dout, DType::kBF16), g_inp, g_weight,
                         GradWrite::kAssign);
  unsetenv("SINKLAB_GEMM_AUTOTUNE");
  EXPECT_LT(GpuTest::RelError(t.ToHostF32(g_out), out), kBf16RelTol);
  EXPECT_LT(GpuTest::RelError(t.ToHostF32(g_dweight), dweight), kF32RelTol);
}

}  // namespace
}  // namespace sinklab

#endif  // SINKLAB_WITH_CUDA

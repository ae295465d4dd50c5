// The gate with its projection on the GPU (layers/cuda/projected_gate.cu: fused for narrow
// gates, else the default's GEMM + gate kernels) against the CPU reference: forward (out,
// gate), backward (dy and dx added to nonzero gradients or dx overwritten, dweight added),
// each input gradient skipped alone, for gates of 8 to 64 packets' width, several row blocks
// with a partial last one, and shapes the fused path declines.
#if SINKLAB_WITH_CUDA

#include <cmath>
#include <cstdint>
#include <ostream>

#include "gtest/gtest.h"
#include "tests/layers/cuda_test_util.h"

namespace sinklab {
namespace {

struct ProjectedGateShape {
  int64_t rows, d, channels, gates;  // x [rows, d], y [rows, channels], weight [gates, d]
};
void PrintTo(const ProjectedGateShape& s, std::ostream* os) {
  *os << s.rows << " rows, D " << s.d << ", C " << s.channels << ", " << s.gates << " gates";
}

class CudaProjectedGateTest : public ::testing::TestWithParam<ProjectedGateShape> {};

TEST_P(CudaProjectedGateTest, MatchesTheCpuReference) {
  SL_SKIP_WITHOUT_CUDA();
  const ProjectedGateShape s = GetParam();
  GpuTest t;
  const Tensor x = t.HostRandom({s.rows, s.d}, 1);
  const Tensor y = t.HostRandom({s.rows, s.channels}, 2);
  const Tensor weight = t.HostRandom({s.gates, s.d}, 3, 2.0f / std::sqrt(float(s.d)));
  const Tensor dout = t.HostRandom({s.rows, s.channels}, 4);
  const Tensor dy0 = t.HostRandom({s.rows, s.channels}, 5);
  const Tensor dx0 = t.HostRandom({s.rows, s.d}, 6);
  const Tensor dw0 = t.HostRandom({s.gates, s.d}, 7, 1.0f, /*round_bf16=*/false);

  Tensor out = t.HostZeros(DType::kF32, {s.rows, s.channels});
  Tensor gate = t.HostZeros(DType::kF32, {s.rows, s.gates});
  Tensor dlogits = t.HostZeros(DType::kF32, {s.rows, s.gates});
  Tensor dy = t.HostCopy(dy0), dx = t.HostCopy(dx0), dx_assigned = t.HostCopy(dx0);
  Tensor dw = t.HostCopy(dw0), dw_twice = t.HostCopy(dw0);
  t.cpu().ProjectedGateForward(out, gate, y, x, weight);
  t.cpu().ProjectedGateBackward(dy, dx, dw, dlogits, dout, y, x, weight, gate,
                                GradWrite::kAccumulate);
  t.cpu().ProjectedGateBackward(Tensor(), dx_assigned, dw_twice, dlogits, dout, y, x, weight,
                                gate, GradWrite::kAssign);
  t.cpu().ProjectedGateBackward(Tensor(), Tensor(), dw_twice, dlogits, dout, y, x, weight, gate,
                                GradWrite::kAssign);

  const Tensor g_x = t.ToDevice(x, DType::kBF16), g_y = t.ToDevice(y, DType::kBF16);
  const Tensor g_w = t.ToDevice(weight, DType::kBF16), g_dout = t.ToDevice(dout, DType::kBF16);
  const Tensor g_out = t.DeviceZeros(DType::kBF16, {s.rows, s.channels});
  const Tensor g_gate = t.DeviceZeros(DType::kBF16, {s.rows, s.gates});
  const Tensor g_dlogits = t.DeviceZeros(DType::kBF16, {s.rows, s.gates});
  t.gpu().ProjectedGateForward(g_out, g_gate, g_y, g_x, g_w);
  EXPECT_LT(GpuTest::RelError(t.ToHostF32(g_out), out), kBf16RelTol);
  EXPECT_LT(GpuTest::RelError(t.ToHostF32(g_gate), gate), kBf16RelTol);

  const Tensor g_dy = t.ToDevice(dy0, DType::kBF16), g_dx = t.ToDevice(dx0, DType::kBF16);
  const Tensor g_dw = t.ToDevice(dw0, DType::kF32);
  t.gpu().ProjectedGateBackward(g_dy, g_dx, g_dw, g_dlogits, g_dout, g_y, g_x, g_w, g_gate,
                                GradWrite::kAccumulate);
  EXPECT_LT(GpuTest::RelError(t.ToHostF32(g_dy), dy), kBf16RelTol);
  EXPECT_LT(GpuTest::RelError(t.ToHostF32(g_dx), dx), kBf16RelTol);
  EXPECT_LT(GpuTest::RelError(t.ToHostF32(g_dw), dw), kBf16RelTol);

  // dy skipped, dx overwritten; then both skipped: dweight gets both calls' sums.
  const Tensor g_dx_assigned = t.ToDevice(dx0, DType::kBF16);
  const Tensor g_dw_twice = t.ToDevice(dw0, DType::kF32);
  t.gpu().ProjectedGateBackward(Tensor(), g_dx_assigned, g_dw_twice, g_dlogits, g_dout, g_y, g_x,
                                g_w, g_gate, GradWrite::kAssign);
  t.gpu().ProjectedGateBackward(Tensor(), Tensor(), g_dw_twice, g_dlogits, g_dout, g_y, g_x, g_w,
                                g_gate, GradWrite::kAssign);
  EXPECT_LT(GpuTest::RelError(t.ToHostF32(g_dx_assigned), dx_assigned), kBf16RelTol);
  EXPECT_LT(GpuTest::RelError(t.ToHostF32(g_dw_twice), dw_twice), kBf16RelTol);

  // The same gradients with dy alone as with both (dx empty).
  const Tensor g_dy_only = t.ToDevice(dy0, DType::kBF16);
  t.gpu().ProjectedGateBackward(g_dy_only, Tensor(), t.ToDevice(dw0, DType::kF32), g_dlogits,
                                g_dout, g_y, g_x, g_w, g_gate, GradWrite::kAccumulate);
  EXPECT_EQ(t.ToHostF32(g_dy_only), t.ToHostF32(g_dy));
}

// Fused: llama_160m's G2 headwise (12 gates of 64 channels: 8 lanes each) over 201 rows
// (7 weight-gradient splits, the last partial); a 128-channel gate per kv head with C < D (16
// lanes); 2 gates of 128 over D = 128; one 512-channel gate (64 packets: summed across
// rounds); 3 gates of 64 channels (24 packets: a partial round); D = 2056 (257 column octets:
// a weight-gradient thread takes two) over 70 rows (3 splits); 20 gates (two chunks of 16 in
// the weight gradient; 4 splits a block with D = 64). Declined (the default runs): 24-channel
// gates (3 packets), 64 elementwise gates.
INSTANTIATE_TEST_SUITE_P(
    Shapes, CudaProjectedGateTest,
    ::testing::Values(ProjectedGateShape{201, 768, 768, 12}, ProjectedGateShape{77, 256, 128, 1},
                      ProjectedGateShape{130, 128, 256, 2}, ProjectedGateShape{45, 64, 512, 1},
                      ProjectedGateShape{37, 96, 192, 3}, ProjectedGateShape{70, 2056, 256, 2},
                      ProjectedGateShape{40, 64, 1280, 20}, ProjectedGateShape{33, 64, 96, 4},
                      ProjectedGateShape{29, 64, 64, 64}));

}  // namespace
}  // namespace sinklab

#endif  // SINKLAB_WITH_CUDA

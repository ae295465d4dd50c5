// The CUDA elementwise kernels (layers/cuda/swiglu.cu, gate.cu) against the CPU reference:
// forward, backward overwriting nonzero starting gradients, outputs left empty, the vector
// path with a scalar tail, unaligned tensors (scalar path), and the gate written in place
// over its logits; gates from one per row to one per channel.
#if SINKLAB_WITH_CUDA

#include <cmath>
#include <cstdint>
#include <ostream>
#include <vector>

#include "gtest/gtest.h"
#include "tests/layers/cuda_test_util.h"

namespace sinklab {
namespace {

struct SwigluShape {
  int64_t rows, cols;
};
void PrintTo(const SwigluShape& s, std::ostream* os) { *os << s.rows << " x " << s.cols; }

class CudaSwigluTest : public ::testing::TestWithParam<SwigluShape> {};

TEST_P(CudaSwigluTest, ForwardAndBackwardMatchTheCpu) {
  SL_SKIP_WITHOUT_CUDA();
  const SwigluShape s = GetParam();
  GpuTest t;
  const Tensor gate = t.HostRandom({s.rows, s.cols}, 1, 2.0f);
  const Tensor up = t.HostRandom({s.rows, s.cols}, 2);
  const Tensor dout = t.HostRandom({s.rows, s.cols}, 3);
  const Tensor dgate0 = t.HostRandom({s.rows, s.cols}, 4), dup0 = t.HostRandom({s.rows, s.cols}, 5);
  Tensor out = t.HostZeros(DType::kF32, {s.rows, s.cols});
  Tensor dgate = t.HostCopy(dgate0), dup = t.HostCopy(dup0);
  t.cpu().SwigluForward(out, gate, up);
  t.cpu().SwigluBackward(dgate, dup, dout, gate, up);

  const Tensor g_gate = t.ToDevice(gate, DType::kBF16), g_up = t.ToDevice(up, DType::kBF16);
  const Tensor g_dout = t.ToDevice(dout, DType::kBF16);
  const Tensor g_out = t.DeviceZeros(DType::kBF16, {s.rows, s.cols});
  const Tensor g_dgate = t.ToDevice(dgate0, DType::kBF16), g_dup = t.ToDevice(dup0, DType::kBF16);
  t.gpu().SwigluForward(g_out, g_gate, g_up);
  t.gpu().SwigluBackward(g_dgate, g_dup, g_dout, g_gate, g_up);
  EXPECT_LT(GpuTest::RelError(t.ToHostF32(g_out), out), kBf16RelTol);
  EXPECT_LT(GpuTest::RelError(t.ToHostF32(g_dgate), dgate), kBf16RelTol);
  EXPECT_LT(GpuTest::RelError(t.ToHostF32(g_dup), dup), kBf16RelTol);

  // Each gradient alone (the other empty) gives the same bits.
  const Tensor g_dgate_only = t.ToDevice(dgate0, DType::kBF16);
  t.gpu().SwigluBackward(g_dgate_only, Tensor(), g_dout, g_gate, g_up);
  EXPECT_EQ(t.ToHostF32(g_dgate_only), t.ToHostF32(g_dgate));
  const Tensor g_dup_only = t.ToDevice(dup0, DType::kBF16);
  t.gpu().SwigluBackward(Tensor(), g_dup_only, g_dout, g_gate, g_up);
  EXPECT_EQ(t.ToHostF32(g_dup_only), t.ToHostF32(g_dup));
}

// 37 x 200: whole 16-byte packets; 37 x 203 = 7511 elements: packets and a 7-element tail.
INSTANTIATE_TEST_SUITE_P(Shapes, CudaSwigluTest,
                         ::testing::Values(SwigluShape{37, 200}, SwigluShape{37, 203}));

// A bf16 device view of `host` starting 2 bytes past a 16-byte boundary.
Tensor UnalignedCopy(GpuTest& t, const Tensor& host) {
  const Tensor buffer = t.DeviceZeros(DType::kBF16, {host.numel() + 1});
  Tensor view(static_cast<char*>(buffer.data()) + 2, DType::kBF16, Device::kCuda,
              {host.dim(0), host.dim(1)});
  std::vector<BF16> staged(host.numel());
  for (int64_t i = 0; i < host.numel(); ++i) staged[i] = FloatToBF16(host.f32()[i]);
  t.gpu().CopyFromHost(view, staged.data());
  return view;
}

TEST(CudaSwigluTest, UnalignedTensorsMatchTheCpu) {
  SL_SKIP_WITHOUT_CUDA();
  GpuTest t;
  const Tensor gate = t.HostRandom({29, 64}, 1, 2.0f), up = t.HostRandom({29, 64}, 2);
  const Tensor dout = t.HostRandom({29, 64}, 3), dgate0 = t.HostRandom({29, 64}, 4);
  const Tensor dup0 = t.HostRandom({29, 64}, 5);
  Tensor out = t.HostZeros(DType::kF32, {29, 64});
  Tensor dgate = t.HostCopy(dgate0), dup = t.HostCopy(dup0);
  t.cpu().SwigluForward(out, gate, up);
  t.cpu().SwigluBackward(dgate, dup, dout, gate, up);

  const Tensor g_gate = UnalignedCopy(t, gate), g_up = UnalignedCopy(t, up);
  const Tensor g_out = UnalignedCopy(t, out);  // overwritten
  const Tensor g_dgate = UnalignedCopy(t, dgate0), g_dup = UnalignedCopy(t, dup0);
  t.gpu().SwigluForward(g_out, g_gate, g_up);
  t.gpu().SwigluBackward(g_dgate, g_dup, UnalignedCopy(t, dout), g_gate, g_up);
  EXPECT_LT(GpuTest::RelError(t.ToHostF32(g_out), out), kBf16RelTol);
  EXPECT_LT(GpuTest::RelError(t.ToHostF32(g_dgate), dgate), kBf16RelTol);
  EXPECT_LT(GpuTest::RelError(t.ToHostF32(g_dup), dup), kBf16RelTol);
}

// ---- Sigmoid gate ------------------------------------------------------------------------

struct GateShape {
  int64_t rows, channels, gates;  // y [rows, channels], logits [rows, gates]
};
void PrintTo(const GateShape& s, std::ostream* os) {
  *os << s.rows << " x " << s.channels << ", " << s.gates << " gates";
}

class CudaSigmoidGateTest : public ::testing::TestWithParam<GateShape> {};

TEST_P(CudaSigmoidGateTest, ForwardMatchesTheCpuAlsoInPlace) {
  SL_SKIP_WITHOUT_CUDA();
  const GateShape s = GetParam();
  GpuTest t;
  const Tensor y = t.HostRandom({s.rows, s.channels}, 1);
  const Tensor logits = t.HostRandom({s.rows, s.gates}, 2, 2.0f);
  Tensor out = t.HostZeros(DType::kF32, {s.rows, s.channels});
  Tensor gate = t.HostZeros(DType::kF32, {s.rows, s.gates});
  t.cpu().SigmoidGateForward(out, gate, y, logits);

  const Tensor g_y = t.ToDevice(y, DType::kBF16);
  const Tensor g_out = t.DeviceZeros(DType::kBF16, {s.rows, s.channels});
  const Tensor g_gate = t.DeviceZeros(DType::kBF16, {s.rows, s.gates});
  t.gpu().SigmoidGateForward(g_out, g_gate, g_y, t.ToDevice(logits, DType::kBF16));
  EXPECT_LT(GpuTest::RelError(t.ToHostF32(g_out), out), kBf16RelTol);
  EXPECT_LT(GpuTest::RelError(t.ToHostF32(g_gate), gate), kBf16RelTol);

  // The attention gate passes its logits buffer as the gate: same bits in place.
  const Tensor g_logits = t.ToDevice(logits, DType::kBF16);
  const Tensor g_out2 = t.DeviceZeros(DType::kBF16, {s.rows, s.channels});
  t.gpu().SigmoidGateForward(g_out2, g_logits, g_y, g_logits);
  EXPECT_EQ(t.ToHostF32(g_out2), t.ToHostF32(g_out));
  EXPECT_EQ(t.ToHostF32(g_logits), t.ToHostF32(g_gate));
}

TEST_P(CudaSigmoidGateTest, BackwardAddsOrWritesTheCpuGradients) {
  SL_SKIP_WITHOUT_CUDA();
  const GateShape s = GetParam();
  GpuTest t;
  const Tensor y = t.HostRandom({s.rows, s.channels}, 1);
  Tensor gate = t.HostRandom({s.rows, s.gates}, 2, 2.0f);
  for (int64_t i = 0; i < gate.numel(); ++i) {  // sigmoid, rounded as the GPU stores it
    const float g = 1.0f / (1.0f + std::exp(-gate.f32()[i]));
    gate.f32()[i] = BF16ToFloat(FloatToBF16(g));
  }
  const Tensor dout = t.HostRandom({s.rows, s.channels}, 3);
  const Tensor dy0 = t.HostRandom({s.rows, s.channels}, 4);
  const Tensor dlogits0 = t.HostRandom({s.rows, s.gates}, 5, 0.1f);
  Tensor dy = t.HostCopy(dy0), dlogits = t.HostCopy(dlogits0);
  t.cpu().SigmoidGateBackward(dy, dlogits, dout, y, gate, GradWrite::kAccumulate);

  const Tensor g_y = t.ToDevice(y, DType::kBF16), g_gate = t.ToDevice(gate, DType::kBF16);
  const Tensor g_dout = t.ToDevice(dout, DType::kBF16);
  const Tensor g_dy = t.ToDevice(dy0, DType::kBF16);
  const Tensor g_dlogits = t.ToDevice(dlogits0, DType::kBF16);
  t.gpu().SigmoidGateBackward(g_dy, g_dlogits, g_dout, g_y, g_gate, GradWrite::kAccumulate);
  EXPECT_LT(GpuTest::RelError(t.ToHostF32(g_dy), dy), kBf16RelTol);
  EXPECT_LT(GpuTest::RelError(t.ToHostF32(g_dlogits), dlogits), kBf16RelTol);

  const Tensor g_dy_only = t.ToDevice(dy0, DType::kBF16);
  t.gpu().SigmoidGateBackward(g_dy_only, Tensor(), g_dout, g_y, g_gate, GradWrite::kAccumulate);
  EXPECT_EQ(t.ToHostF32(g_dy_only), t.ToHostF32(g_dy));
  const Tensor g_dlogits_only = t.ToDevice(dlogits0, DType::kBF16);
  t.gpu().SigmoidGateBackward(Tensor(), g_dlogits_only, g_dout, g_y, g_gate,
                              GradWrite::kAccumulate);
  EXPECT_EQ(t.ToHostF32(g_dlogits_only), t.ToHostF32(g_dlogits));

  // kAssign overwrites: the outputs start as the random dy0, dlogits0 and must not keep them.
  Tensor dy_set = t.HostCopy(dy0), dlogits_set = t.HostCopy(dlogits0);
  t.cpu().SigmoidGateBackward(dy_set, dlogits_set, dout, y, gate, GradWrite::kAssign);
  const Tensor g_dy_set = t.ToDevice(dy0, DType::kBF16);
  const Tensor g_dlogits_set = t.ToDevice(dlogits0, DType::kBF16);
  t.gpu().SigmoidGateBackward(g_dy_set, g_dlogits_set, g_dout, g_y, g_gate, GradWrite::kAssign);
  EXPECT_LT(GpuTest::RelError(t.ToHostF32(g_dy_set), dy_set), kBf16RelTol);
  EXPECT_LT(GpuTest::RelError(t.ToHostF32(g_dlogits_set), dlogits_set), kBf16RelTol);
}

// One gate per row (c = 96: 16 lanes per gate), headwise (c = d_h = 32: 4 lanes, 64: 8
// lanes; 201 x 12 gates fill several warps and leave a partial one), elementwise (c = 1,
// with a scalar tail: 37 x 99 gates), and c = 25 (scalar channel loop, 32 lanes).
INSTANTIATE_TEST_SUITE_P(Shapes, CudaSigmoidGateTest,
                         ::testing::Values(GateShape{37, 96, 1}, GateShape{37, 96, 3},
                                           GateShape{37, 128, 2}, GateShape{37, 99, 99},
                                           GateShape{29, 100, 4}, GateShape{201, 768, 12}));

TEST(CudaSigmoidGateTest, Fp32GatesOverBf16Activations) {
  SL_SKIP_WITHOUT_CUDA();
  GpuTest t;
  const Tensor y = t.HostRandom({37, 64}, 1);
  const Tensor logits = t.HostRandom({37, 2}, 2, 2.0f, /*round_bf16=*/false);
  Tensor out = t.HostZeros(DType::kF32, {37, 64}), gate = t.HostZeros(DType::kF32, {37, 2});
  t.cpu().SigmoidGateForward(out, gate, y, logits);
  const Tensor g_out = t.DeviceZeros(DType::kBF16, {37, 64});
  const Tensor g_gate = t.DeviceZeros(DType::kF32, {37, 2});
  t.gpu().SigmoidGateForward(g_out, g_gate, t.ToDevice(y, DType::kBF16),
                             t.ToDevice(logits, DType::kF32));
  EXPECT_LT(GpuTest::RelError(t.ToHostF32(g_out), out), kBf16RelTol);
  EXPECT_LT(GpuTest::RelError(t.ToHostF32(g_gate), gate), kF32RelTol);
}

}  // namespace
}  // namespace sinklab

#endif  // SINKLAB_WITH_CUDA

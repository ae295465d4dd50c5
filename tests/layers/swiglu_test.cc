// SwiGLU: the kernel on hand values, and the FFN layer's gradients by finite differences.
#include <cmath>

#include "gtest/gtest.h"
#include "layers/cpu/cpu_backend.h"
#include "layers/swiglu.h"
#include "tests/layers/gradient_check.h"

namespace sinklab {
namespace {

TEST(SwigluTest, ForwardIsSiluOfGateTimesUp) {
  CpuBackend backend;
  TensorPool pool;
  Tensor gate = pool.Zeros({3}), up = pool.Zeros({3}), out = pool.Zeros({3});
  const float g[] = {-2.0f, 0.0f, 1.5f}, u[] = {3.0f, 7.0f, -0.5f};
  for (int i = 0; i < 3; ++i) {
    gate.f32()[i] = g[i];
    up.f32()[i] = u[i];
  }
  backend.SwigluForward(out, gate, up);
  for (int i = 0; i < 3; ++i) {
    const double silu = g[i] / (1.0 + std::exp(-static_cast<double>(g[i])));  // x sigmoid(x)
    EXPECT_NEAR(out.f32()[i], silu * u[i], 1e-6);
  }
}

// L = sum(out * R); eps 1e-3; tolerance 1e-3 + 1e-2 |grad|.
TEST(SwigluTest, FfnBackwardMatchesFiniteDifferences) {
  CpuBackend backend;
  Arena arena(Device::kCpu, size_t{1} << 20);
  TensorPool pool;
  SwiGlu ffn(&backend, &arena, "ffn", /*d_model=*/6, /*ffn_hidden=*/10, /*max_rows=*/6);
  int stream = 10;
  for (Parameter* p : ffn.parameters()) {
    FillNormal(p->master.f32(), p->master.numel(), 0.0f, 0.5f, 3, stream++);
  }
  Tensor x = pool.Random({2, 3, 6}, 1), y = pool.Zeros({2, 3, 6});
  Tensor r = pool.Random({2, 3, 6}, 2), dx = pool.Zeros({2, 3, 6});
  auto loss = [&] {
    ffn.Forward(y, x, /*residual=*/Tensor());
    return WeightedSum(y, r);
  };
  loss();
  ffn.Backward(dx, r, x);
  ExpectGradientMatches("dx", x, dx, loss);
  for (Parameter* p : ffn.parameters()) ExpectGradientMatches(p->name, p->master, p->grad, loss);
}

}  // namespace
}  // namespace sinklab

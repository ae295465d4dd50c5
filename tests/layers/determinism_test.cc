// The row-parallel and elementwise CPU kernels give bit-identical results for any number of
// threads, at sizes large enough that they do run in parallel (matmul and attention have
// their own tests in matmul_test.cc and attention_test.cc).
#include <omp.h>

#include <cstring>
#include <vector>

#include "gtest/gtest.h"
#include "layers/cpu/cpu_backend.h"
#include "tests/layers/gradient_check.h"

namespace sinklab {
namespace {

std::vector<float> RunKernels(int threads) {
  omp_set_num_threads(threads);
  CpuBackend backend;
  TensorPool pool;
  const int64_t B = 4, T = 129, H = 4, d = 32, D = H * d, F = 3 * D, V = 263;
  const int64_t N = B * T;
  std::vector<const Tensor*> outputs;
  // SwiGLU.
  Tensor gate = pool.Random({N, F}, 1, 3.0f), up = pool.Random({N, F}, 2);
  Tensor act = pool.Zeros({N, F}), d_gate = pool.Zeros({N, F}), d_up = pool.Zeros({N, F});
  backend.SwigluForward(act, gate, up);
  backend.SwigluBackward(d_gate, d_up, act, gate, up);
  // RMSNorm.
  Tensor x = pool.Random({N, D}, 3), w = pool.Random({D}, 4), y = pool.Zeros({N, D});
  Tensor rstd = pool.Zeros({N}), dx = pool.Zeros({N, D}), dw = pool.Zeros({D});
  backend.RmsNormForward(y, rstd, x, w, 1e-5f);
  backend.RmsNormBackward(dx, dw, y, x, w, rstd, GradWrite::kAccumulate);
  // RoPE (on random tables: only the arithmetic matters here).
  Tensor cos = pool.Random({T, d / 2}, 5), sin = pool.Random({T, d / 2}, 6);
  Tensor q = pool.Random({B, T, H, d}, 7), q_rot = pool.Zeros({B, T, H, d});
  Tensor dq = pool.Zeros({B, T, H, d});
  backend.RopeForward(q_rot, q, cos, sin);
  backend.RopeBackward(dq, q_rot, cos, sin, GradWrite::kAccumulate);
  // Cross-entropy.
  Tensor logits = pool.Random({N, V}, 8, 4.0f), losses = pool.Zeros({N}), lse = pool.Zeros({N});
  std::vector<int32_t> ids(N);
  for (int64_t i = 0; i < N; ++i) ids[i] = static_cast<int32_t>(i * 7 % V) - (i % 11 == 0);
  Tensor targets = pool.Ints({N}, ids), dlogits = pool.Zeros({N, V});
  backend.CrossEntropyForward(losses, lse, logits, targets);
  backend.CrossEntropyBackward(dlogits, logits, lse, targets, 0.37f);
  std::vector<float> all;
  for (const Tensor* t : {&act, &d_gate, &d_up, &y, &rstd, &dx, &dw, &q_rot, &dq, &losses,
                          &lse, &dlogits}) {
    const std::vector<float> v = Values(*t);
    all.insert(all.end(), v.begin(), v.end());
  }
  return all;
}

TEST(DeterminismTest, RowAndElementwiseKernelsAreThreadCountIndependent) {
  const int saved = omp_get_max_threads();
  const std::vector<float> one = RunKernels(1), two = RunKernels(2), three = RunKernels(3);
  omp_set_num_threads(saved);
  EXPECT_EQ(0, std::memcmp(one.data(), two.data(), one.size() * sizeof(float)));
  EXPECT_EQ(0, std::memcmp(one.data(), three.data(), one.size() * sizeof(float)));
}

}  // namespace
}  // namespace sinklab

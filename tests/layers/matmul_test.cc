// CPU matmul: agreement with naive triple loops (odd sizes that exercise every tile edge and
// k-blocking), accumulation semantics, determinism across runs and thread counts, and the
// Linear layer's gradients by finite differences.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "gtest/gtest.h"
#include "layers/cpu/cpu_backend.h"
#include "layers/linear.h"
#include "tests/layers/gradient_check.h"

namespace sinklab {
namespace {

struct Sizes {
  int64_t n, c, oc;
};

// Odd shapes: fewer rows than a micro-kernel, columns not a multiple of the vector width,
// k beyond one k-block (256), and the default job's shapes.
const Sizes kSizes[] = {{1, 1, 1},     {3, 5, 7},   {13, 17, 33},   {67, 129, 45},
                        {50, 300, 70}, {9, 520, 3}, {130, 64, 264}, {257, 128, 384}};

TEST(MatmulTest, ForwardMatchesNaiveTripleLoopOnOddSizes) {
  CpuBackend backend;
  for (const Sizes& s : kSizes) {
    TensorPool pool;
    Tensor inp = pool.Random({s.n, s.c}, 1);
    Tensor weight = pool.Random({s.oc, s.c}, 2);
    Tensor out = pool.Random({s.n, s.oc}, 3);  // garbage: forward must overwrite it
    backend.MatmulForward(out, inp, weight, /*residual=*/Tensor());
    // With a residual: out2 = residual + product; and in place (residual aliasing out).
    const Tensor residual = pool.Random({s.n, s.oc}, 4);
    Tensor out2 = pool.Random({s.n, s.oc}, 5), in_place = pool.Zeros({s.n, s.oc});
    std::copy(residual.f32(), residual.f32() + residual.numel(), in_place.f32());
    backend.MatmulForward(out2, inp, weight, residual);
    backend.MatmulForward(in_place, inp, weight, in_place);
    for (int64_t i = 0; i < s.n; ++i) {
      for (int64_t o = 0; o < s.oc; ++o) {
        double expected = 0;
        for (int64_t c = 0; c < s.c; ++c) {
          expected += static_cast<double>(inp.f32()[i * s.c + c]) * weight.f32()[o * s.c + c];
        }
        // fp32 sums of c products of unit normals: error ~ sqrt(c) * 1e-7 * sqrt(c).
        const int64_t at = i * s.oc + o;
        ASSERT_NEAR(out.f32()[at], expected, 1e-5 * (s.c + 1))
            << "n=" << s.n << " c=" << s.c << " oc=" << s.oc << " at " << i << "," << o;
        ASSERT_NEAR(out2.f32()[at], expected + residual.f32()[at], 1e-5 * (s.c + 2))
            << "residual, n=" << s.n << " c=" << s.c << " oc=" << s.oc << " at " << i << "," << o;
        ASSERT_EQ(in_place.f32()[at], out2.f32()[at]) << "in place at " << i << "," << o;
      }
    }
  }
}

// dinp is overwritten (kAssign) or added to (kAccumulate); dweight is always added to.
TEST(MatmulTest, BackwardWritesNaiveProductsOnOddSizes) {
  CpuBackend backend;
  for (const GradWrite write : {GradWrite::kAccumulate, GradWrite::kAssign}) {
    for (const Sizes& s : kSizes) {
      TensorPool pool;
      Tensor inp = pool.Random({s.n, s.c}, 1);
      Tensor weight = pool.Random({s.oc, s.c}, 2);
      Tensor dout = pool.Random({s.n, s.oc}, 3);
      Tensor dinp = pool.Random({s.n, s.c}, 4);  // prior contents: kept or overwritten
      Tensor dweight = pool.Random({s.oc, s.c}, 5);
      const std::vector<float> dinp0 = Values(dinp), dweight0 = Values(dweight);
      backend.MatmulBackward(dinp, dweight, dout, inp, weight, write);
      for (int64_t i = 0; i < s.n; ++i) {
        for (int64_t c = 0; c < s.c; ++c) {
          double expected = write == GradWrite::kAccumulate ? dinp0[i * s.c + c] : 0.0;
          for (int64_t o = 0; o < s.oc; ++o) {
            expected += static_cast<double>(dout.f32()[i * s.oc + o]) * weight.f32()[o * s.c + c];
          }
          ASSERT_NEAR(dinp.f32()[i * s.c + c], expected, 1e-5 * (s.oc + 1)) << "dinp";
        }
      }
      for (int64_t o = 0; o < s.oc; ++o) {
        for (int64_t c = 0; c < s.c; ++c) {
          double expected = dweight0[o * s.c + c];
          for (int64_t i = 0; i < s.n; ++i) {
            expected += static_cast<double>(dout.f32()[i * s.oc + o]) * inp.f32()[i * s.c + c];
          }
          ASSERT_NEAR(dweight.f32()[o * s.c + c], expected, 1e-5 * (s.n + 1)) << "dweight";
        }
      }
    }
  }
}

TEST(MatmulTest, EmptyDinpComputesOnlyTheWeightGradient) {
  CpuBackend backend;
  TensorPool pool;
  Tensor inp = pool.Random({4, 6}, 1), weight = pool.Random({5, 6}, 2);
  Tensor dout = pool.Random({4, 5}, 3), dweight = pool.Zeros({5, 6});
  backend.MatmulBackward(Tensor(), dweight, dout, inp, weight, GradWrite::kAssign);
  for (int o = 0; o < 5; ++o) {
    for (int c = 0; c < 6; ++c) {
      double expected = 0;
      for (int i = 0; i < 4; ++i) expected += dout.f32()[i * 5 + o] * inp.f32()[i * 6 + c];
      EXPECT_NEAR(dweight.f32()[o * 6 + c], expected, 1e-5);
    }
  }
}

// Runs forward and backward of the default job's largest matmul shape with `threads`.
std::vector<float> RunMatmuls(int threads) {
  omp_set_num_threads(threads);
  CpuBackend backend;
  TensorPool pool;
  const int64_t n = 2 * 128 + 7, c = 128, oc = 384 + 5;
  Tensor inp = pool.Random({n, c}, 1), weight = pool.Random({oc, c}, 2);
  Tensor out = pool.Zeros({n, oc}), dinp = pool.Zeros({n, c}), dweight = pool.Zeros({oc, c});
  backend.MatmulForward(out, inp, weight, /*residual=*/Tensor());
  backend.MatmulBackward(dinp, dweight, out, inp, weight, GradWrite::kAccumulate);
  std::vector<float> all = Values(out);
  for (const Tensor* t : {&dinp, &dweight}) {
    const std::vector<float> v = Values(*t);
    all.insert(all.end(), v.begin(), v.end());
  }
  return all;
}

TEST(MatmulTest, DeterministicAcrossRunsAndThreadCounts) {
  const int saved = omp_get_max_threads();
  const std::vector<float> one = RunMatmuls(1);
  const std::vector<float> two = RunMatmuls(2);
  const std::vector<float> two_again = RunMatmuls(2);
  const std::vector<float> three = RunMatmuls(3);
  omp_set_num_threads(saved);
  ASSERT_EQ(one.size(), two.size());
  // Bit-identical, not merely close.
  EXPECT_EQ(0, std::memcmp(one.data(), two.data(), one.size() * sizeof(float)));
  EXPECT_EQ(0, std::memcmp(two.data(), two_again.data(), two.size() * sizeof(float)));
  EXPECT_EQ(0, std::memcmp(one.data(), three.data(), one.size() * sizeof(float)));
}

// Linear gradients by central differences of L = sum(out * R), R random; eps 1e-3 in fp32,
// tolerance 1e-3 + 1e-2 |grad| (inputs, weights and R are unit normals; |grad| ~ 1..5).
TEST(LinearTest, BackwardMatchesFiniteDifferences) {
  CpuBackend backend;
  Arena arena(Device::kCpu, size_t{1} << 20);
  TensorPool pool;
  Linear linear(&backend, &arena, "proj", /*in_features=*/7, /*out_features=*/5);
  FillNormal(linear.weight()->master.f32(), 35, 0.0f, 1.0f, 3, 0);
  Tensor inp = pool.Random({2, 3, 7}, 1), out = pool.Zeros({2, 3, 5});
  Tensor r = pool.Random({2, 3, 5}, 2), dinp = pool.Zeros({2, 3, 7});
  auto loss = [&] {
    linear.Forward(out, inp);
    return WeightedSum(out, r);
  };
  loss();
  linear.Backward(dinp, r, inp, GradWrite::kAssign);
  ExpectGradientMatches("dinp", inp, dinp, loss);
  ExpectGradientMatches("dweight", linear.weight()->master, linear.weight()->grad, loss);
}

}  // namespace
}  // namespace sinklab

// NewtonSchulz5 against an fp64 Jacobi SVD: the output keeps the input's singular vectors
// and maps each singular value s (of G / ||G||_F) through five steps of the quintic
// p(s) = a s + b s^3 + c s^5, which lands in a band around 1, not at 1.
#include "optim/newton_schulz.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "core/arena.h"
#include "core/rng.h"
#include "gtest/gtest.h"
#include "tests/optim/jacobi_svd.h"

namespace sinklab {
namespace {

// The band of five quintic steps on normalized singular values s in [kBandInputMin, 1]:
// measured by evaluating p^5 on a fine grid (min 0.6818 near s = 0.003 and s = 0.05, max
// 1.2024), stated with margin. Below s ~ 3e-3 the output falls under the band (p^5(s) ~
// 488 s near 0): a badly conditioned input keeps its smallest directions short. Observed
// on the matrices below: every output singular value in [0.6818, 1.1343].
constexpr double kBandLow = 0.66, kBandHigh = 1.22;
constexpr double kBandInputMin = 3e-3;

double Quintic(double s) {
  return kNewtonSchulzA * s + kNewtonSchulzB * s * s * s + kNewtonSchulzC * s * s * s * s * s;
}
double QuinticSteps(double s, int steps) {
  for (int i = 0; i < steps; ++i) s = Quintic(s);
  return s;
}

struct Matrix {
  int64_t rows, cols;
  std::vector<float> values;
  Tensor tensor() { return Tensor(values.data(), DType::kF32, Device::kCpu, {rows, cols}); }
  std::vector<double> AsDouble() const { return {values.begin(), values.end()}; }
};

Matrix RandomMatrix(int64_t rows, int64_t cols, uint64_t seed) {
  Matrix m{rows, cols, std::vector<float>(rows * cols)};
  FillNormal(m.values.data(), rows * cols, 0.0f, 1.0f, seed, 0);
  return m;
}

// NewtonSchulz5 of `g` with a workspace that just fits it.
Matrix Orthogonalize(Matrix g, int steps = 5) {
  Arena arena(Device::kCpu, size_t{1} << 20);
  NewtonSchulzWorkspace workspace(g.rows * g.cols, std::min(g.rows, g.cols), &arena);
  Matrix out{g.rows, g.cols, std::vector<float>(g.values.size())};
  NewtonSchulz5(g.tensor(), steps, workspace, out.tensor());
  return out;
}

double FrobeniusNorm(const Matrix& m) {
  double sum = 0;
  for (float x : m.values) sum += static_cast<double>(x) * x;
  return std::sqrt(sum);
}

TEST(JacobiSvdTest, ReconstructsTheMatrixWithOrthonormalVectors) {
  for (const auto& shape : {std::pair<int64_t, int64_t>{5, 3}, {3, 5}, {4, 4}}) {
    const Matrix a = RandomMatrix(shape.first, shape.second, 9);
    const Svd svd = JacobiSvd(a.AsDouble(), a.rows, a.cols);
    ASSERT_EQ(svd.k, std::min(a.rows, a.cols));
    for (int64_t i = 0; i < a.rows; ++i) {
      for (int64_t j = 0; j < a.cols; ++j) {
        double sum = 0;
        for (int64_t r = 0; r < svd.k; ++r) {
          sum += svd.u[i * svd.k + r] * svd.s[r] * svd.v[j * svd.k + r];
        }
        EXPECT_NEAR(sum, a.values[i * a.cols + j], 1e-12);
      }
    }
    for (int64_t p = 0; p < svd.k; ++p) {
      if (p > 0) {
        EXPECT_GE(svd.s[p - 1], svd.s[p]);
      }
      for (int64_t q = 0; q < svd.k; ++q) {
        double uu = 0, vv = 0;
        for (int64_t i = 0; i < a.rows; ++i) uu += svd.u[i * svd.k + p] * svd.u[i * svd.k + q];
        for (int64_t i = 0; i < a.cols; ++i) vv += svd.v[i * svd.k + p] * svd.v[i * svd.k + q];
        EXPECT_NEAR(uu, p == q, 1e-12);
        EXPECT_NEAR(vv, p == q, 1e-12);
      }
    }
  }
}

TEST(NewtonSchulzTest, OneStepOnADiagonalMatrixAppliesTheQuinticByHand) {
  // G = diag(3, 4): ||G||_F = 5, so X0 = diag(0.6, 0.8) and one step gives diag(p(0.6),
  // p(0.8)) = diag(1.19326944, 0.97648192), worked out from a, b, c by hand.
  Matrix g{2, 2, {3.0f, 0.0f, 0.0f, 4.0f}};
  const Matrix x = Orthogonalize(g, /*steps=*/1);
  const double p06 = 3.4445 * 0.6 - 4.7750 * 0.216 + 2.0315 * 0.07776;
  const double p08 = 3.4445 * 0.8 - 4.7750 * 0.512 + 2.0315 * 0.32768;
  EXPECT_NEAR(x.values[0], p06, 1e-6);
  EXPECT_NEAR(x.values[3], p08, 1e-6);
  EXPECT_EQ(x.values[1], 0.0f);
  EXPECT_EQ(x.values[2], 0.0f);
}

TEST(NewtonSchulzTest, SingularValuesOfRandomMatricesLieInTheQuinticBand) {
  for (const auto& shape : {std::pair<int64_t, int64_t>{16, 16}, {32, 8}, {8, 32}, {48, 40}}) {
    for (const uint64_t seed : {1, 2, 3}) {
      SCOPED_TRACE(testing::Message() << shape.first << "x" << shape.second << " seed " << seed);
      const Matrix g = RandomMatrix(shape.first, shape.second, seed);
      const Svd input = JacobiSvd(g.AsDouble(), g.rows, g.cols);
      const Matrix x = Orthogonalize(g);
      const Svd output = JacobiSvd(x.AsDouble(), x.rows, x.cols);
      const double norm = FrobeniusNorm(g);
      // Every input direction strong enough to be in the designed range ends in the band.
      int64_t in_range = 0;
      for (double s : input.s) in_range += s / norm >= kBandInputMin;
      if (shape.first != shape.second) {
        EXPECT_EQ(in_range, input.k);  // well conditioned
      }
      for (int64_t r = 0; r < in_range; ++r) {
        EXPECT_GE(output.s[r], kBandLow) << r;
        EXPECT_LE(output.s[r], kBandHigh) << r;
      }
      // Near 1 but not orthogonal: the coefficients trade exactness for speed.
      double largest_gap = 0;
      for (double s : output.s) largest_gap = std::max(largest_gap, std::abs(s - 1));
      EXPECT_GT(largest_gap, 0.02);
    }
  }
}

TEST(NewtonSchulzTest, KeepsSingularVectorsAndMapsEachSingularValueByTheQuintic) {
  // With G = U S V^T, U^T X V must be diagonal with entries p^5(s / ||G||_F).
  for (const auto& shape : {std::pair<int64_t, int64_t>{16, 16}, {32, 8}, {8, 32}}) {
    SCOPED_TRACE(testing::Message() << shape.first << "x" << shape.second);
    const Matrix g = RandomMatrix(shape.first, shape.second, 17);
    const Svd svd = JacobiSvd(g.AsDouble(), g.rows, g.cols);
    const Matrix x = Orthogonalize(g);
    const double norm = FrobeniusNorm(g);
    const int64_t k = svd.k;
    double max_off_diagonal = 0;
    for (int64_t p = 0; p < k; ++p) {
      for (int64_t q = 0; q < k; ++q) {
        double d = 0;  // (U^T X V)[p, q] = sum_ij U[i, p] X[i, j] V[j, q]
        for (int64_t i = 0; i < x.rows; ++i) {
          for (int64_t j = 0; j < x.cols; ++j) {
            d += svd.u[i * k + p] * x.values[i * x.cols + j] * svd.v[j * k + q];
          }
        }
        if (p == q) {
          EXPECT_NEAR(d, QuinticSteps(svd.s[p] / norm, 5), 2e-5) << p;
        } else {
          max_off_diagonal = std::max(max_off_diagonal, std::abs(d));
        }
      }
    }
    EXPECT_LT(max_off_diagonal, 2e-5);
  }
}

TEST(NewtonSchulzTest, TallInputGivesTheTransposeOfTheWideResult) {
  const Matrix wide = RandomMatrix(8, 32, 5);
  Matrix tall{32, 8, std::vector<float>(wide.values.size())};
  for (int64_t i = 0; i < 8; ++i) {
    for (int64_t j = 0; j < 32; ++j) tall.values[j * 8 + i] = wide.values[i * 32 + j];
  }
  const Matrix x_wide = Orthogonalize(wide);
  const Matrix x_tall = Orthogonalize(tall);
  for (int64_t i = 0; i < 8; ++i) {
    for (int64_t j = 0; j < 32; ++j) {
      EXPECT_NEAR(x_tall.values[j * 8 + i], x_wide.values[i * 32 + j], 1e-7);
    }
  }
}

TEST(NewtonSchulzTest, ZeroInputGivesZeroAndOutputMayAliasInput) {
  Matrix zero{3, 4, std::vector<float>(12, 0.0f)};
  EXPECT_EQ(Orthogonalize(zero).values, std::vector<float>(12, 0.0f));
  // In place: the same result as into a separate buffer.
  Matrix g = RandomMatrix(6, 10, 4);
  const Matrix expected = Orthogonalize(g);
  Arena arena(Device::kCpu, size_t{1} << 20);
  NewtonSchulzWorkspace workspace(60, 6, &arena);
  NewtonSchulz5(g.tensor(), 5, workspace, g.tensor());
  EXPECT_EQ(g.values, expected.values);
}

TEST(NewtonSchulzTest, ResultDoesNotDependOnTheThreadCount) {
  // 96 x 160 is large enough for every product to take the OpenMP path.
  const Matrix g = RandomMatrix(96, 160, 8);
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  const Matrix one = Orthogonalize(g);
  omp_set_num_threads(std::max(3, threads));
  const Matrix many = Orthogonalize(g);
  omp_set_num_threads(threads);
  EXPECT_EQ(one.values, many.values);
}

TEST(NewtonSchulzTest, WorkspaceFitsOnlyShapesWithinItsBounds) {
  Arena arena(Device::kCpu, size_t{1} << 20);
  const NewtonSchulzWorkspace workspace(32 * 8, 8, &arena);
  EXPECT_TRUE(workspace.Fits(32, 8));
  EXPECT_TRUE(workspace.Fits(8, 32));
  EXPECT_TRUE(workspace.Fits(4, 4));
  EXPECT_FALSE(workspace.Fits(16, 16));  // 256 values, but the Gram matrix would be 16 x 16
  EXPECT_FALSE(workspace.Fits(33, 8));
}

}  // namespace
}  // namespace sinklab

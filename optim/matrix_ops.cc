#include "optim/matrix_ops.h"

#include <algorithm>
#include <cmath>

#include "core/rng.h"

namespace sinklab {
namespace {

// Below this many multiply-adds the OpenMP fork costs more than the product.
constexpr int64_t kParallelMinFlops = int64_t{1} << 16;

constexpr uint64_t kPowerIterationSeed = 0x5eed5eedu;

// x <- x / ||x||; returns ||x|| (x is left alone when it is zero).
double Normalize(double* x, int64_t n) {
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += x[i] * x[i];
  const double norm = std::sqrt(sum);
  if (norm > 0.0) {
    for (int64_t i = 0; i < n; ++i) x[i] /= norm;
  }
  return norm;
}

// dot(x, y) over k elements with eight partial sums in a fixed pattern (vectorizable
// without reassociating, hence deterministic).
float Dot(const float* x, const float* y, int64_t k) {
  float partial[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t p = 0;
  for (; p + 8 <= k; p += 8) {
    for (int j = 0; j < 8; ++j) partial[j] += x[p + j] * y[p + j];
  }
  for (; p < k; ++p) partial[0] += x[p] * y[p];
  return ((partial[0] + partial[1]) + (partial[2] + partial[3])) +
         ((partial[4] + partial[5]) + (partial[6] + partial[7]));
}

}  // namespace

void MatMulCpu(const float* a, const float* b, float* c, int64_t m, int64_t k, int64_t n) {
  // Row i of c is sum_p a[i, p] * b[p, :]: axpy over contiguous rows of b.
#pragma omp parallel for schedule(static) if (m * k * n >= kParallelMinFlops)
  for (int64_t i = 0; i < m; ++i) {
    float* c_row = c + i * n;
    std::fill(c_row, c_row + n, 0.0f);
    for (int64_t p = 0; p < k; ++p) {
      const float a_ip = a[i * k + p];
      const float* b_row = b + p * n;
      for (int64_t j = 0; j < n; ++j) c_row[j] += a_ip * b_row[j];
    }
  }
}

void MatMulTransposedBCpu(const float* a, const float* b, float* c, int64_t m, int64_t k,
                          int64_t n) {
#pragma omp parallel for schedule(static) if (m * k * n >= kParallelMinFlops)
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) c[i * n + j] = Dot(a + i * k, b + j * k, k);
  }
}

void TransposeCpu(const float* in, float* out, int64_t rows, int64_t cols) {
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t j = 0; j < cols; ++j) out[j * rows + i] = in[i * cols + j];
  }
}

double SumOfSquaresCpu(const float* x, int64_t n) {
  double partial[4] = {0.0, 0.0, 0.0, 0.0};
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    for (int j = 0; j < 4; ++j) partial[j] += static_cast<double>(x[i + j]) * x[i + j];
  }
  for (; i < n; ++i) partial[0] += static_cast<double>(x[i]) * x[i];
  return (partial[0] + partial[1]) + (partial[2] + partial[3]);
}

double LargestSingularValueEstimate(const float* x, int64_t rows, int64_t cols,
                                    int iterations, double* u, double* v) {
  for (int64_t j = 0; j < cols; ++j) v[j] = NormalAt(kPowerIterationSeed, 0, j);
  Normalize(v, cols);
  double sigma = 0.0;
  for (int it = 0; it < iterations; ++it) {
    for (int64_t i = 0; i < rows; ++i) {  // u = x v
      double sum = 0.0;
      for (int64_t j = 0; j < cols; ++j) sum += static_cast<double>(x[i * cols + j]) * v[j];
      u[i] = sum;
    }
    if (Normalize(u, rows) == 0.0) return 0.0;
    std::fill(v, v + cols, 0.0);
    for (int64_t i = 0; i < rows; ++i) {  // v = x^T u
      for (int64_t j = 0; j < cols; ++j) v[j] += static_cast<double>(x[i * cols + j]) * u[i];
    }
    sigma = Normalize(v, cols);  // ||x^T u|| with ||u|| = 1
  }
  return sigma;
}

}  // namespace sinklab

// Small dense fp32 matrix helpers for the optimizers (Newton-Schulz in Muon), row-major, on
// the CPU. Kept apart from layers/cpu so the optimizer does not depend on layer internals.
//
// Determinism: every output element is computed by one thread with a fixed summation order
// (OpenMP splits the output rows only), so results do not depend on the thread count.
#ifndef SINKLAB_OPTIM_MATRIX_OPS_H_
#define SINKLAB_OPTIM_MATRIX_OPS_H_

#include <cstdint>

namespace sinklab {

// c[m, n] = a[m, k] @ b[k, n]. c must not alias a or b.
void MatMulCpu(const float* a, const float* b, float* c, int64_t m, int64_t k, int64_t n);

// c[m, n] = a[m, k] @ b[n, k]^T (rows of a dotted with rows of b). c must not alias a or b.
void MatMulTransposedBCpu(const float* a, const float* b, float* c, int64_t m, int64_t k,
                          int64_t n);

// out[cols, rows] = in[rows, cols]^T. out must not alias in.
void TransposeCpu(const float* in, float* out, int64_t rows, int64_t cols);

// sum x^2 over n elements, accumulated in double in a fixed order.
double SumOfSquaresCpu(const float* x, int64_t n);

// Estimate of the largest singular value of x[rows, cols] by `iterations` rounds of power
// iteration on x^T x (Golub & Van Loan, "Matrix Computations", sec. 8.2.1) from a fixed
// pseudo-random start (Philox, seed kPowerIterationSeed): v <- x^T (x v) / ||.||. Returns
// ||x^T u|| of the last round, a lower bound that rises to sigma_max; it converges slowly
// when the top singular values are close (as after Newton-Schulz), so it is an estimate.
// u[rows] and v[cols] are scratch. Computed in double; serial, deterministic.
double LargestSingularValueEstimate(const float* x, int64_t rows, int64_t cols,
                                    int iterations, double* u, double* v);

// Runs body(begin, end) -> double over [0, n) split into at most kMaxChunks fixed chunks
// (their bounds depend on n only), chunks in parallel, and returns the sum of the results
// in chunk order: deterministic whatever the thread count. Used by elementwise optimizer
// updates that also sum (p_new - p_old)^2 on statistics steps.
constexpr int kMaxChunks = 256;
constexpr int64_t kMinChunkElements = int64_t{1} << 14;
template <typename Body>
double ParallelChunkedSum(int64_t n, const Body& body) {
  int64_t chunks = (n + kMinChunkElements - 1) / kMinChunkElements;
  chunks = chunks < 1 ? 1 : (chunks > kMaxChunks ? kMaxChunks : chunks);
  const int64_t chunk_size = (n + chunks - 1) / chunks;
  double sums[kMaxChunks];
#pragma omp parallel for schedule(static) if (chunks > 1)
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t begin = c * chunk_size;
    const int64_t end = begin + chunk_size < n ? begin + chunk_size : n;
    sums[c] = begin < end ? body(begin, end) : 0.0;
  }
  double total = 0.0;
  for (int64_t c = 0; c < chunks; ++c) total += sums[c];
  return total;
}

}  // namespace sinklab

#endif  // SINKLAB_OPTIM_MATRIX_OPS_H_

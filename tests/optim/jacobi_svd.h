// JacobiSvd (tests only): the singular value decomposition of a small dense matrix in
// double, by one-sided Jacobi rotations (Hestenes 1958; Demmel & Veselic 1992, "Jacobi's
// method is more accurate than QR", algorithm 4.1). The judge of the Newton-Schulz tests:
// slow (O(n^3) per sweep) but simple and accurate to near double precision.
#ifndef SINKLAB_TESTS_OPTIM_JACOBI_SVD_H_
#define SINKLAB_TESTS_OPTIM_JACOBI_SVD_H_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <vector>

namespace sinklab {

// a = u diag(s) v^T with a [rows, cols], k = min(rows, cols), u [rows, k] and v [cols, k]
// with orthonormal columns (row-major), s [k] decreasing and >= 0.
struct Svd {
  int64_t rows = 0, cols = 0, k = 0;
  std::vector<double> u, s, v;
};

inline Svd JacobiSvd(const std::vector<double>& a, int64_t rows, int64_t cols) {
  // Orthogonalize the columns of a tall w [m, n] (m >= n): w <- w J, v <- v J with plane
  // rotations J until every pair of columns is orthogonal; then s_j = ||w_j||, u_j = w_j / s_j.
  const bool wide = rows < cols;
  const int64_t m = wide ? cols : rows, n = wide ? rows : cols;
  std::vector<double> w(m * n), v(n * n, 0.0);
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t j = 0; j < cols; ++j) {
      (wide ? w[j * n + i] : w[i * n + j]) = a[i * cols + j];
    }
  }
  for (int64_t j = 0; j < n; ++j) v[j * n + j] = 1.0;
  for (int sweep = 0; sweep < 60; ++sweep) {
    bool rotated = false;
    for (int64_t p = 0; p + 1 < n; ++p) {
      for (int64_t q = p + 1; q < n; ++q) {
        double alpha = 0, beta = 0, gamma = 0;
        for (int64_t i = 0; i < m; ++i) {
          alpha += w[i * n + p] * w[i * n + p];
          beta += w[i * n + q] * w[i * n + q];
          gamma += w[i * n + p] * w[i * n + q];
        }
        if (std::abs(gamma) <= 1e-15 * std::sqrt(alpha * beta) || gamma == 0) continue;
        rotated = true;
        // The rotation that zeroes the (p, q) entry of w^T w (Golub & Van Loan, sec. 8.5.2).
        const double zeta = (beta - alpha) / (2 * gamma);
        const double t = (zeta >= 0 ? 1.0 : -1.0) / (std::abs(zeta) + std::sqrt(1 + zeta * zeta));
        const double c = 1 / std::sqrt(1 + t * t), s = c * t;
        for (std::vector<double>* x : {&w, &v}) {
          const int64_t len = x == &w ? m : n;
          for (int64_t i = 0; i < len; ++i) {
            const double xp = (*x)[i * n + p], xq = (*x)[i * n + q];
            (*x)[i * n + p] = c * xp - s * xq;
            (*x)[i * n + q] = s * xp + c * xq;
          }
        }
      }
    }
    if (!rotated) break;
  }
  // Column norms, sorted decreasing.
  std::vector<double> norms(n, 0.0);
  for (int64_t j = 0; j < n; ++j) {
    for (int64_t i = 0; i < m; ++i) norms[j] += w[i * n + j] * w[i * n + j];
    norms[j] = std::sqrt(norms[j]);
  }
  std::vector<int64_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t x, int64_t y) { return norms[x] > norms[y]; });
  // Left vectors of the tall problem: w_j / s_j; right vectors: v_j.
  std::vector<double> left(m * n), right(n * n);
  for (int64_t r = 0; r < n; ++r) {
    const int64_t j = order[r];
    for (int64_t i = 0; i < m; ++i) left[i * n + r] = norms[j] > 0 ? w[i * n + j] / norms[j] : 0;
    for (int64_t i = 0; i < n; ++i) right[i * n + r] = v[i * n + j];
  }
  Svd svd;
  svd.rows = rows;
  svd.cols = cols;
  svd.k = n;
  for (int64_t r = 0; r < n; ++r) svd.s.push_back(norms[order[r]]);
  // The tall problem was a (u = left, v = right) or a^T (a = right s left^T).
  svd.u = wide ? right : left;
  svd.v = wide ? left : right;
  return svd;
}

}  // namespace sinklab

#endif  // SINKLAB_TESTS_OPTIM_JACOBI_SVD_H_

// Gemm: the one fp32 matrix product behind every CPU matmul (layers/cpu/matmul.cc).
#ifndef SINKLAB_LAYERS_CPU_GEMM_H_
#define SINKLAB_LAYERS_CPU_GEMM_H_

#include <cstdint>

namespace sinklab {

// A strided view of a matrix: element (r, c) is data[r * row_stride + c * col_stride].
// Transposes are free: swap the strides.
struct StridedMatrix {
  const float* data;
  int64_t row_stride;
  int64_t col_stride;
  float at(int64_t r, int64_t c) const { return data[r * row_stride + c * col_stride]; }
  // The matrix from row r on, and the transpose (both free: views).
  StridedMatrix FromRow(int64_t r) const { return {data + r * row_stride, row_stride, col_stride}; }
  StridedMatrix Transposed() const { return {data, col_stride, row_stride}; }
};

// c [M, N] row-major (row stride ldc) = (accumulate ? c : 0) + a [M, K] @ b [K, N].
// Deterministic for any number of OpenMP threads: every element of c is owned by one
// thread and summed over k in a fixed order (k blocks in order, k ascending within a block).
// Tiles are shared among the OpenMP threads (small products run on the calling thread).
void Gemm(float* c, int64_t ldc, StridedMatrix a, StridedMatrix b, int64_t m, int64_t n,
          int64_t k, bool accumulate);
// The same product (bit-identical result) on the calling thread only: for callers that are
// already inside a parallel region (attention runs one per (batch, head)).
void GemmOneThread(float* c, int64_t ldc, StridedMatrix a, StridedMatrix b, int64_t m,
                   int64_t n, int64_t k, bool accumulate);

}  // namespace sinklab

#endif  // SINKLAB_LAYERS_CPU_GEMM_H_

// Newton-Schulz orthogonalization on the GPU in bf16, as muon.py runs it (the iteration and
// its coefficients: optim/newton_schulz.h). Products through cuBLASLt (bf16 operands, fp32
// accumulation, bf16 results); the wide orientation is handled by transposed products, so
// nothing is transposed in memory: for X [r, c] with r <= c, A = X X^T and X <- aX + B X;
// for r > c, A = X^T X and X <- aX + X B. Runs on stream 0 (optim/cuda/optim_kernels.h).
#ifndef SINKLAB_OPTIM_CUDA_NEWTON_SCHULZ_GPU_H_
#define SINKLAB_OPTIM_CUDA_NEWTON_SCHULZ_GPU_H_

#include <cstdint>
#include <memory>

#include "core/arena.h"
#include "core/tensor.h"
#include "optim/cuda/optim_kernels.h"

namespace sinklab {

class GemmLt;

class NewtonSchulzGpu {
 public:
  // Scratch for every [rows, cols] with rows * cols <= max_numel and min(rows, cols) <=
  // max_small_dim, from a CUDA arena (construction only).
  NewtonSchulzGpu(int64_t max_numel, int64_t max_small_dim, Arena* arena);
  ~NewtonSchulzGpu();

  // x [rows, cols] bf16 on the device, in place: x / (||x||_F + 1e-7), then `steps`
  // iterations. `sums` slot `slot` is used for the norm.
  void Run(const Tensor& x, int steps, cuda_optim::DeviceSums& sums, int slot);

 private:
  int64_t max_numel_, max_small_dim_;
  std::unique_ptr<GemmLt> gemm_;
  Tensor y_, gram_, poly_;  // bf16 scratch: next iterate, A, B
};

// The same iteration for a batch of equally shaped wide matrices at once: x [B, n, m] bf16
// (n <= m, dense, already normalized), each step three strided-batched products with the
// additive terms taken as the products' C inputs (no copies):
//   A = X X^T;  B = c A A + b A;  X' = B X + a X.
class BatchedNewtonSchulzGpu {
 public:
  // Scratch for every batch with B * n * m <= max_numel (0: none; every call passes its
  // own) and B * n * n <= max_gram_numel, from a CUDA arena (construction only).
  BatchedNewtonSchulzGpu(int64_t max_numel, int64_t max_gram_numel, Arena* arena);
  ~BatchedNewtonSchulzGpu();

  // `steps` (>= 1) iterations on x; returns the [B, n, m] tensor holding the result: x
  // itself (even steps) or this object's scratch (odd steps; valid until the next call).
  Tensor Iterate(const Tensor& x, int steps);
  // The same with the caller's bf16 CUDA scratch of >= x.numel() elements for the other
  // iterate (odd steps return a view of it), so results of several calls can coexist.
  Tensor Iterate(const Tensor& x, int steps, const Tensor& scratch);

 private:
  int64_t max_numel_, max_gram_numel_;
  std::unique_ptr<GemmLt> gemm_;
  Tensor next_, gram_, poly_;  // bf16 scratch: next iterate, A, B
};

}  // namespace sinklab

#endif  // SINKLAB_OPTIM_CUDA_NEWTON_SCHULZ_GPU_H_

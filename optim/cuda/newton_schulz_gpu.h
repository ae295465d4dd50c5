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

}  // namespace sinklab

#endif  // SINKLAB_OPTIM_CUDA_NEWTON_SCHULZ_GPU_H_

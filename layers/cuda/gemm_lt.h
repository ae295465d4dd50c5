// GemmLt: row-major matrix products through cuBLASLt, the one path every GPU matmul takes
// (linear layers, the LM head, Muon's Newton-Schulz). bf16 or fp32 inputs, fp32 or bf16
// output, fp32 accumulation (CUBLAS_COMPUTE_32F). For each distinct problem (shape, dtypes,
// transposes, beta != 0, pointer alignment) the descriptors and the algorithm are chosen
// once and cached; the workspace is allocated once at construction.
//
// The algorithm: the first call of a problem times the heuristic's first
// kAutotuneCandidates algorithms on its own operands (a few runs each, output to d, or to a
// temporary buffer when d is also the accumulated c) and keeps the fastest: on llama_160m's
// step the best of the first 16 took ~8% less GEMM time than the heuristic's first choice
// (experiments/perf/gemm_bench). The choice is shared by every GemmLt of the process, so a
// problem gets the same algorithm (and the same bits) within a process.
// SINKLAB_GEMM_AUTOTUNE=0 turns the timing off (the heuristic's first choice: the same
// algorithm in every process).
#ifndef SINKLAB_LAYERS_CUDA_GEMM_LT_H_
#define SINKLAB_LAYERS_CUDA_GEMM_LT_H_

#include <cuda_runtime.h>

#include <cstddef>
#include <map>
#include <memory>
#include <tuple>

#include "core/tensor.h"

namespace sinklab {

class GemmLt {
 public:
  explicit GemmLt(cudaStream_t stream, size_t workspace_bytes = size_t{32} << 20);
  ~GemmLt();
  GemmLt(const GemmLt&) = delete;
  GemmLt& operator=(const GemmLt&) = delete;

  // c [m, n] = alpha * op(a) @ op(b) + beta * c, row-major. op(a) is [m, k]: a is stored
  // [m, k], or [k, m] when trans_a; op(b) is [k, n]: b is stored [k, n], or [n, k] when
  // trans_b. a and b share a dtype (bf16 or f32); c is f32 or bf16. Tensors of any rank
  // are taken as 2-D [numel / last dim, last dim].
  void RowMajor(const Tensor& c, const Tensor& a, bool trans_a, const Tensor& b, bool trans_b,
                float alpha, float beta);
  // d = alpha * op(a) @ op(b) + beta * c with c another tensor of d's 2-D shape and dtype
  // (read in the epilogue; e.g. a residual stream), or d itself.
  void RowMajor(const Tensor& d, const Tensor& a, bool trans_a, const Tensor& b, bool trans_b,
                float alpha, float beta, const Tensor& c);

  // Strided-batched: d[i] = alpha * op(a[i]) @ op(b[i]) + beta * c[i] for i < batch, each
  // of a, b, c, d rank 3 [batch, rows, cols], dense (matrix i at i * rows * cols), with the
  // 2-D rules of RowMajor per matrix. c has d's shape and dtype and may be d itself (in
  // place) or another tensor (then d = ... + beta * c with no copy). One cuBLASLt call.
  // a or b may instead be rank 2: one matrix shared by the whole batch (stride 0).
  void RowMajorBatched(const Tensor& d, const Tensor& a, bool trans_a, const Tensor& b,
                       bool trans_b, float alpha, float beta, const Tensor& c);

 private:
  struct Plan;
  // One call's operands: d = alpha op(a) op(b) + beta c; d_bytes covers every matrix of d.
  struct Operands {
    const void *a, *b, *c;
    void* d;
    float alpha, beta;
    size_t d_bytes;
  };
  // (m, n, k, trans_a, trans_b, input dtype, output dtype, beta != 0, alignment, batch,
  // shared: bit 0 a, bit 1 b is one matrix for the whole batch)
  using Key = std::tuple<int64_t, int64_t, int64_t, bool, bool, int, int, bool, int, int64_t, int>;
  const Plan& PlanFor(const Key& key, const Operands& ops);
  // The fastest of `count` candidate algorithms on ops (index into them).
  int FastestAlgorithm(const Plan& plan, const void* algos, int count, const Operands& ops);
  // cuBLASLt's status for one run of algo on ops with output d.
  int Launch(const Plan& plan, const void* algo, const Operands& ops, void* d);
  void Run(const Key& key, const Operands& ops);

  cudaStream_t stream_;
  void* handle_ = nullptr;  // cublasLtHandle_t
  void* workspace_ = nullptr;
  size_t workspace_bytes_;
  std::map<Key, std::unique_ptr<Plan>> plans_;
};

}  // namespace sinklab

#endif  // SINKLAB_LAYERS_CUDA_GEMM_LT_H_

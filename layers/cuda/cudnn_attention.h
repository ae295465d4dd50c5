// CudnnAttention: causal softmax attention of S queries over their own S keys through cuDNN's
// fused flash attention, built with the backend graph API (no cudnn_frontend). CudaBackend's
// AttentionForward/Backward take it when the spec allows it and cuDNN has a plan for the
// shape (cuda_backend.h), for softmax and also for softmax1, the sink logit and the KV bias,
// whose extra logit (and the bias key's value) CudaBackend folds into out and lse after this
// forward (attention_extra_keys.h).
//
// Layouts, all strided views of sinklab's own tensors (no copies): q, out [B, S, H, d] and
// k, v [B, R, Hkv, d] are cuDNN's logical [B, H, S, d] with strides (S H d, d, H d, 1) and
// (R Hkv d, d, Hkv d, 1), keys and values from row R - S of each batch on (R = S + 1 with the
// KV bias: its key is row 0, not cuDNN's; dk and dv rows 0 are left to the caller); lse
// [B, H, S] f32 is cuDNN's softmax stats [B, H, S, 1] (natural-log log-sum-exp of the scaled,
// masked scores per query row, as our kernels store it). bf16 tensors, fp32 accumulation,
// head dims 64 and 128, H a multiple of Hkv (GQA).
//
// Forward graph (the pattern of cuDNN's "Scaled Dot Product Attention" runtime fusion, as
// cudnn_frontend lowers sdpa with causal mask and stats):
//   S = Q K^T (fp32) -> S * scale -> select(row >= col, S, lowest) -> softmax with stats
//   (M = max, E = exp(S - M), L = sum E, stats = M + log L, P = E / L, P in bf16) -> O = P V.
// Backward graph (cuDNN's SDPA backward pattern; dQ goes through an fp32 dQ_accum):
//   D = sum_d dO * O (* 1), S as above, P = exp(S - stats), dV = P^T dO,
//   dS = P (dO V^T - D) * scale, dK = dS^T Q, dQ_accum = dS K, dQ = dQ_accum (bf16).
//   With GQA, dK and dV are per query head and reduced over the head group.
// When cuDNN refuses a graph, a few other spellings of it that cudnn_frontend has emitted
// (index dtype, where the backward masks, the dtype of K's view) are tried in turn.
//
// Plans are built on the first call per shape and cached; a shape cuDNN refuses (at plan
// build or at its first execution) is remembered with the failing step and cuDNN's message
// (*Supported() return false and the backend keeps its own kernel). cuDNN writes dq, dk, dv
// (it does not accumulate).
#ifndef SINKLAB_LAYERS_CUDA_CUDNN_ATTENTION_H_
#define SINKLAB_LAYERS_CUDA_CUDNN_ATTENTION_H_

#if SINKLAB_WITH_CUDNN

#include <cuda_runtime.h>
#include <cudnn.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <tuple>

#include "core/tensor.h"

namespace sinklab {

// One attention problem: q, out [B, q_rows, H, d] and lse [B, H, q_rows], k and v [B,
// kv_rows, Hkv, d], of which cuDNN reads (and writes the gradients of) the last S = seq rows
// of each batch. The forward needs q_rows = seq (it runs every query).
struct CudnnAttentionShape {
  int64_t batch = 0, seq = 0, heads = 0, kv_heads = 0, head_dim = 0, kv_rows = 0, q_rows = 0;
  int64_t skipped_rows() const { return kv_rows - seq; }  // rows before cuDNN's keys
  int64_t skipped_queries() const { return q_rows - seq; }
  std::string ToString() const;
};

class CudnnAttention {
 public:
  // Creates a cuDNN handle that runs on `stream` (CudaBackend's); if that fails, every
  // shape is refused with the reason.
  explicit CudnnAttention(cudaStream_t stream);
  ~CudnnAttention();
  CudnnAttention(const CudnnAttention&) = delete;
  CudnnAttention& operator=(const CudnnAttention&) = delete;

  // Whether cuDNN has a forward (backward) plan for `shape`; builds and caches it on the
  // first call. When not, *why (if given) says which step failed and cuDNN's message; the
  // reason is logged once per shape.
  bool ForwardSupported(const CudnnAttentionShape& shape, std::string* why = nullptr);
  bool BackwardSupported(const CudnnAttentionShape& shape, std::string* why = nullptr);
  // Device workspace bytes Forward (Backward) needs; the shape must be supported.
  size_t ForwardWorkspaceBytes(const CudnnAttentionShape& shape);
  size_t BackwardWorkspaceBytes(const CudnnAttentionShape& shape);

  // out [B, S, H, d] bf16, lse [B, H, S] f32 (overwritten) from q, k, v; `workspace` holds
  // ForwardWorkspaceBytes(shape) bytes (256-byte aligned). Returns false when cuDNN fails to
  // run the plan: the shape is then refused from here on (logged once, with cuDNN's message)
  // and the caller runs its own kernel.
  bool Forward(const CudnnAttentionShape& shape, float scale, const Tensor& out, const Tensor& lse,
               const Tensor& q, const Tensor& k, const Tensor& v, void* workspace);
  // The last S rows of each batch of dq [B, q_rows, H, d] and of dk, dv [B, kv_rows, Hkv, d]
  // bf16 OVERWRITTEN from dout, q, k, v, out and lse of Forward (or of our kernels: the same
  // lse); workspace and result as Forward's.
  bool Backward(const CudnnAttentionShape& shape, float scale, const Tensor& dq, const Tensor& dk,
                const Tensor& dv, const Tensor& dout, const Tensor& q, const Tensor& k,
                const Tensor& v, const Tensor& out, const Tensor& lse, void* workspace);
  // D_i = dout_i . out_i [B, H, S] f32 as the last Backward with `workspace` computed it
  // (cuDNN's softmax_sum, in the workspace), or nullptr where the plan keeps it internal.
  const float* SoftmaxSum(const CudnnAttentionShape& shape, const void* workspace);

 private:
  struct Plan;
  using Key = std::tuple<bool, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t>;
  // The cached plan of (direction, shape), built on first use; nullptr when cuDNN refused
  // it (reason in *why).
  Plan* GetPlan(bool backward, const CudnnAttentionShape& shape, std::string* why);
  // Builds the graph and plan of (direction, shape), trying each spelling of the graph in
  // turn; nullptr with every spelling's failure in *why when cuDNN refuses them all.
  std::unique_ptr<Plan> BuildPlan(bool backward, const CudnnAttentionShape& shape,
                                  std::string* why);
  // Drops the plan of (direction, shape), if any, and remembers and logs why.
  void Refuse(bool backward, const CudnnAttentionShape& shape, const std::string& reason);

  cudaStream_t stream_ = nullptr;
  cudnnHandle_t handle_ = nullptr;
  std::string init_error_;  // why the handle could not be made (else empty)
  std::map<Key, std::unique_ptr<Plan>> plans_;
  std::map<Key, std::string> refused_;  // why a shape has no plan
};

}  // namespace sinklab

#endif  // SINKLAB_WITH_CUDNN
#endif  // SINKLAB_LAYERS_CUDA_CUDNN_ATTENTION_H_

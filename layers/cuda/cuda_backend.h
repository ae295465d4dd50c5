// CudaBackend: the GPU implementation of Backend (layers/backend.h). bf16 activations and
// weight copies, fp32 master weights, gradients, per-row statistics (rstd, lse, losses).
// Every kernel runs on one stream (stream()); nothing synchronizes the host except the
// *ToHost calls. Memory comes from the caller's arena, plus a fixed cuBLASLt workspace and
// a small reduction scratch allocated once at construction.
//
// The member functions are defined by layer, one file each (as layers/cpu/):
//   cuda_backend.cu (construction, fill/copy/convert, host copies, reductions),
//   matmul.cu (cuBLASLt, layers/cuda/gemm_lt.h), embedding.cu, rmsnorm.cu, rope.cu,
//   attention*.cu (fused, flash-style: no [S, K] matrix unless probs are asked for),
//   attention_cudnn.cc (cuDNN's fused attention for softmax, softmax1 and the sink logit
//   where the spec allows it),
//   prepend_rows.cu, gate.cu, swiglu.cu, cross_entropy.cu; shared device helpers in
//   kernel_util.cuh.
//
// Attention probs: AttentionForward writes probs [B, H, S, K] only when the tensor passed
// is non-empty (statistics steps); AttentionBackward never reads them (it recomputes the
// weights from q, k and lse), so attention_backward_reads_probs() is false.
// AttentionRowStats (attention_row_stats.cu) recomputes the weights the same way, for
// statistics steps without probs.
#ifndef SINKLAB_LAYERS_CUDA_CUDA_BACKEND_H_
#define SINKLAB_LAYERS_CUDA_CUDA_BACKEND_H_

#include <cuda_runtime.h>

#include <map>
#include <memory>
#include <string>

#include "layers/backend.h"

namespace sinklab {

class CudnnAttention;
struct CudnnAttentionShape;
class GemmLt;

// A size rounded up to 256 bytes: where one call's sub-buffers of CudaBackend::Workspace start.
inline size_t AlignUp256(size_t bytes) { return (bytes + 255) / 256 * 256; }

class CudaBackend : public Backend {
 public:
  // Uses the current CUDA device (cudaSetDevice before constructing).
  CudaBackend();
  ~CudaBackend() override;
  CudaBackend(const CudaBackend&) = delete;
  CudaBackend& operator=(const CudaBackend&) = delete;

  Device device() const override { return Device::kCuda; }
  DType activation_dtype() const override { return DType::kBF16; }
  bool attention_backward_reads_probs() const override { return false; }

  void Fill(const Tensor& x, float value) override;
  void Copy(const Tensor& dst, const Tensor& src) override;
  void Convert(const Tensor& dst, const Tensor& src) override;
  void CopyFromHost(const Tensor& dst, const void* host_src) override;
  void CopyToHost(void* host_dst, const Tensor& src) override;
  void AddInto(const Tensor& dst, const Tensor& src) override;
  double SumToHost(const Tensor& x) override;
  int64_t CountNonNegative(const Tensor& x) override;
  void MeanLoss(const Tensor& out, const Tensor& losses, const Tensor& targets) override;
  double MaxAbsToHost(const Tensor& x) override;

  // CUDA graphs (layers/cuda/recorded_work.cc); SINKLAB_CUDA_GRAPHS=0 runs every call as is.
  void RunRecorded(const std::string& key, const std::function<void()>& enqueue) override;
  bool records_graphs() const { return record_graphs_; }
  int recorded_graphs() const;  // graphs RunRecorded holds (tests)

  void MatmulForward(const Tensor& out, const Tensor& inp, const Tensor& weight,
                     const Tensor& residual) override;
  void MatmulForwardGroup(const Tensor& outs, const Tensor& inp, const Tensor& weights) override;
  void MatmulWeightGradGroup(const Tensor& dweights, const Tensor& douts,
                             const Tensor& inp) override;
  void MatmulBackward(const Tensor& dinp, const Tensor& dweight, const Tensor& dout,
                      const Tensor& inp, const Tensor& weight, GradWrite dinp_write) override;

  void EmbeddingForward(const Tensor& out, const Tensor& tokens, const Tensor& table) override;
  void EmbeddingBackward(const Tensor& dtable, const Tensor& dout, const Tensor& tokens) override;

  void RmsNormForward(const Tensor& out, const Tensor& rstd, const Tensor& inp,
                      const Tensor& weight, float eps) override;
  void RmsNormBackward(const Tensor& dinp, const Tensor& dweight, const Tensor& dout,
                       const Tensor& inp, const Tensor& weight, const Tensor& rstd,
                       GradWrite dinp_write) override;

  void RopeForward(const Tensor& out, const Tensor& inp, const Tensor& cos,
                   const Tensor& sin) override;
  void RopeBackward(const Tensor& dinp, const Tensor& dout, const Tensor& cos, const Tensor& sin,
                    GradWrite dinp_write) override;
  // rmsnorm_rope.cu: one pass for head dims 64 and 128 (else the default's two).
  void RmsNormRopeForward(const Tensor& out, const Tensor& rstd, const Tensor& inp,
                          const Tensor& weight, float eps, const Tensor& cos,
                          const Tensor& sin) override;
  void RmsNormRopeBackward(const Tensor& dinp, const Tensor& dweight, const Tensor& dout,
                           const Tensor& inp, const Tensor& weight, const Tensor& rstd,
                           const Tensor& cos, const Tensor& sin, const Tensor& scratch) override;

  void AttentionForward(const Tensor& out, const Tensor& probs, const Tensor& lse,
                        const Tensor& unclipped_values, const Tensor& q, const Tensor& k,
                        const Tensor& v, const Tensor& sink_logit,
                        const AttentionSpec& spec) override;
  void AttentionBackward(const Tensor& dq, const Tensor& dk, const Tensor& dv,
                         const Tensor& dsink_logit, const Tensor& dout, const Tensor& q,
                         const Tensor& k, const Tensor& v, const Tensor& sink_logit,
                         const Tensor& out, const Tensor& unclipped_values, const Tensor& probs,
                         const Tensor& lse, const AttentionSpec& spec,
                         GradWrite dqkv_write) override;
  bool AttentionForwardBiasApart(const Tensor& out, const Tensor& lse, const Tensor& q,
                                 const Tensor& k, const Tensor& v, const Tensor& k_bias,
                                 const Tensor& v_bias, const Tensor& sink_logit,
                                 const AttentionSpec& spec) override;
  void AttentionBackwardBiasApart(const Tensor& dq, const Tensor& dk, const Tensor& dv,
                                  const Tensor& dk_bias, const Tensor& dv_bias,
                                  const Tensor& dsink_logit, const Tensor& dout, const Tensor& q,
                                  const Tensor& k, const Tensor& v, const Tensor& k_bias,
                                  const Tensor& v_bias, const Tensor& sink_logit, const Tensor& out,
                                  const Tensor& lse, const AttentionSpec& spec) override;
  void AttentionRowStats(const Tensor& row_stats, const Tensor& probs, const Tensor& q,
                         const Tensor& k, const Tensor& lse, const Tensor& sink_logit,
                         const AttentionSpec& spec, int64_t prefix_tokens) override;

  void PrependRows(const Tensor& out, const Tensor& prefix, const Tensor& inp) override;
  void PrependRowsBackward(const Tensor& dprefix, const Tensor& dinp, const Tensor& dout) override;

  void SigmoidGateForward(const Tensor& out, const Tensor& gate, const Tensor& y,
                          const Tensor& logits) override;
  void SigmoidGateBackward(const Tensor& dy, const Tensor& dlogits, const Tensor& dout,
                           const Tensor& y, const Tensor& gate, GradWrite write) override;

  void SwigluForward(const Tensor& out, const Tensor& gate, const Tensor& up) override;
  void SwigluBackward(const Tensor& dgate, const Tensor& dup, const Tensor& dout,
                      const Tensor& gate, const Tensor& up) override;

  void CrossEntropyForward(const Tensor& losses, const Tensor& lse, const Tensor& logits,
                           const Tensor& targets) override;
  void CrossEntropyBackward(const Tensor& dlogits, const Tensor& logits, const Tensor& lse,
                            const Tensor& targets, float dloss) override;
  // One pass over each row (the loss and the gradient), dloss computed on the device.
  void CrossEntropyForwardBackward(const Tensor& losses, const Tensor& lse, const Tensor& dlogits,
                                   const Tensor& logits, const Tensor& targets,
                                   float loss_scale) override;

  // The stream every kernel of this backend runs on; Synchronize waits for it.
  cudaStream_t stream() const { return stream_; }
  void Synchronize() const;
  // The cuBLASLt wrapper (optimizers reuse it for Newton-Schulz).
  GemmLt& gemm() const { return *gemm_; }

  // Whether AttentionForward (backward: AttentionBackward) runs cuDNN's attention for q, k
  // and spec, given no probs and unclipped_values (and all of dq, dk, dv); builds cuDNN's
  // plan for the shape on the first call. When not, *why (if given) says why. The backward
  // may run cuDNN on all but the first S % 128 rows, the lead rows (attention_extra_keys.h).
  bool UsesCudnnAttention(const Tensor& q, const Tensor& k, const AttentionSpec& spec,
                          bool backward, std::string* why = nullptr);

 private:
  // cudnn_attention.cc: cuDNN's attention when UsesCudnnAttention and every tensor is 16-byte
  // aligned; false (nothing done) otherwise. cuDNN overwrites its gradients: with kAssign the
  // backward lets it write dq, dk, dv in place (when it then fails they may be partly
  // written; the caller overwrites them); with kAccumulate cuDNN writes workspace scratch,
  // which is added to dq, dk, dv.
  // cudnn_attention.cc: whether the spec and dtypes let cuDNN run (creates cudnn_attention_).
  bool CudnnAllows(const Tensor& q, const Tensor& k, const AttentionSpec& spec, std::string* why);
  // The problem cuDNN's backward runs for q, k: all S rows, else (no KV-bias key, no plan for
  // S) the last S - r with r = S % 128 <= kMaxLeadRows lead rows; false when neither has a plan.
  bool CudnnBackwardShape(const Tensor& q, const Tensor& k, const AttentionSpec& spec,
                          CudnnAttentionShape* shape, std::string* why);
  // Whether it runs all S rows (the bias key apart needs that).
  bool CudnnBackwardRunsEveryRow(const Tensor& q, const Tensor& k, const AttentionSpec& spec);
  bool TryCudnnAttentionForward(const Tensor& out, const Tensor& probs, const Tensor& lse,
                                const Tensor& unclipped_values, const Tensor& q, const Tensor& k,
                                const Tensor& v, const AttentionSpec& spec);
  bool TryCudnnAttentionBackward(const Tensor& dq, const Tensor& dk, const Tensor& dv,
                                 const Tensor& dout, const Tensor& q, const Tensor& k,
                                 const Tensor& v, const Tensor& out, const Tensor& unclipped_values,
                                 const Tensor& lse, const AttentionSpec& spec,
                                 GradWrite dqkv_write);
  // The bias key apart (AttentionBackwardBiasApart): cuDNN's backward over the S real keys
  // (dq, dk, dv written) and the bias key's share; false (dk_bias, dv_bias untouched) when
  // cuDNN does not run.
  bool TryCudnnAttentionBackwardBiasApart(const Tensor& dq, const Tensor& dk, const Tensor& dv,
                                          const Tensor& dk_bias, const Tensor& dv_bias,
                                          const Tensor& dout, const Tensor& q, const Tensor& k,
                                          const Tensor& v, const Tensor& k_bias,
                                          const Tensor& v_bias, const Tensor& out,
                                          const Tensor& lse, const AttentionSpec& spec);

  // rmsnorm.cu: RmsNormBackward's parts. The fused kernel (dinp and dweight in one pass)
  // returns false, launching nothing, for shapes it does not cover.
  void RmsNormInputGrad(const Tensor& dinp, const Tensor& dout, const Tensor& inp,
                        const Tensor& weight, const Tensor& rstd, GradWrite dinp_write);
  void RmsNormWeightGrad(const Tensor& dweight, const Tensor& dout, const Tensor& inp,
                         const Tensor& rstd);
  bool RmsNormBackwardFused(const Tensor& dinp, const Tensor& dweight, const Tensor& dout,
                            const Tensor& inp, const Tensor& weight, const Tensor& rstd,
                            GradWrite dinp_write);
  // dweight += the sum over splits, in order, of partials [splits, D].
  void AddRmsNormSplits(const Tensor& dweight, const float* partials, int64_t splits);

  // matmul.cu's narrow layers (misaligned [N, OC] rows): products on rows padded to ocp.
  Tensor PaddedWeight(char* at, const Tensor& weight, int64_t ocp);
  void NarrowMatmulForward(const Tensor& out, const Tensor& inp, const Tensor& weight, int64_t ocp);
  void NarrowMatmulBackward(const Tensor& dinp, const Tensor& dweight, const Tensor& dout,
                            const Tensor& inp, const Tensor& weight, GradWrite dinp_write,
                            int64_t ocp);
  // Device scratch of at least `bytes` for the kernels of one backend call; valid until the
  // next call to Workspace. Grows (freeing the old buffer, which synchronizes) only when a
  // call needs more than any before: in training that is the first step alone.
  void* Workspace(size_t bytes);
  // *buffer, a device buffer of *capacity bytes, grown to `bytes` first if smaller (freeing
  // the old one, which synchronizes). Workspace's and bias_apart_rows_'s mechanism.
  // A reallocation bumps buffers_generation_: graphs recorded before it hold freed pointers.
  void* Grown(void** buffer, size_t* capacity, size_t bytes);
  // Reduces the kSumBlocks partials a reduction kernel left in scratch_ (their sum, or
  // their max) and returns it to the host (synchronizes).
  double PartialsToHost(bool take_max);

  cudaStream_t stream_ = nullptr;
  std::unique_ptr<GemmLt> gemm_;
  // Reduction scratch: kScratchDoubles doubles on the device and pinned on the host.
  static constexpr int kScratchDoubles = 1024;
  double* scratch_ = nullptr;
  double* host_scratch_ = nullptr;
  // CrossEntropyForwardBackward's dloss (one float), written and read on the stream.
  void* loss_scratch_ = nullptr;
  void* workspace_ = nullptr;
  size_t workspace_bytes_ = 0;
  // AttentionBackwardBiasApart's k, v, dk, dv with the bias rows prepended, for our kernels
  // when cuDNN fails to run its plan (allocated then, grown like the workspace).
  void* bias_apart_rows_ = nullptr;
  size_t bias_apart_rows_bytes_ = 0;
#if SINKLAB_WITH_CUDNN
  std::unique_ptr<CudnnAttention> cudnn_attention_;  // created on first use
#endif
  // RunRecorded's graphs by key, and whether it records at all.
  struct Recording {
    int calls = 0;            // of the key, before its graph
    uint64_t generation = 0;  // buffers_generation_ when recorded
    cudaGraphExec_t exec = nullptr;
    ~Recording();
  };
  std::map<std::string, std::unique_ptr<Recording>> recordings_;
  bool record_graphs_ = true;
  uint64_t buffers_generation_ = 0;
};

}  // namespace sinklab

#endif  // SINKLAB_LAYERS_CUDA_CUDA_BACKEND_H_

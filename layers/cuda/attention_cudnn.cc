// CudaBackend's cuDNN attention path (cuda_backend.h): whether cuDNN runs an attention
// (AttentionSpec::allow_library_kernel, from model.attention.kernel AUTO, and a variant and
// shape cuDNN has a plan for), and the forward and backward through CudnnAttention
// (cudnn_attention.h). Without cuDNN (SINKLAB_WITH_CUDNN unset) the path is absent.
#include <cstdint>
#include <string>

#include "absl/strings/str_cat.h"
#include "core/status.h"
#include "layers/cuda/cuda_backend.h"
#include "layers/cuda/cudnn_attention.h"

namespace sinklab {

#if SINKLAB_WITH_CUDNN
namespace {

CudnnAttentionShape CudnnShapeOf(const Tensor& q, const Tensor& k) {
  CudnnAttentionShape shape;
  shape.batch = q.dim(0);
  shape.seq = q.dim(1);
  shape.heads = q.dim(2);
  shape.kv_heads = k.dim(2);
  shape.head_dim = q.dim(3);
  return shape;
}

bool Aligned16(std::initializer_list<const Tensor*> tensors) {
  for (const Tensor* t : tensors) {
    if (reinterpret_cast<uintptr_t>(t->data()) % 16 != 0) return false;
  }
  return true;
}

// A [dims of like] bf16 tensor at `data` (workspace scratch).
Tensor ScratchLike(void* data, const Tensor& like) {
  int64_t shape[Tensor::kMaxRank];
  for (int i = 0; i < like.rank(); ++i) shape[i] = like.dim(i);
  return Tensor(data, like.dtype(), Device::kCuda, shape, like.rank());
}

size_t AlignUp256(size_t bytes) { return (bytes + 255) / 256 * 256; }

}  // namespace
#endif  // SINKLAB_WITH_CUDNN

bool CudaBackend::UsesCudnnAttention(const Tensor& q, const Tensor& k, const AttentionSpec& spec,
                                     bool backward, std::string* why) {
  const auto refuse = [why](const std::string& reason) {
    if (why != nullptr) *why = reason;
    return false;
  };
#if SINKLAB_WITH_CUDNN
  if (!spec.allow_library_kernel) {
    return refuse("sinklab's kernels asked for (model.attention.kernel: SINKLAB)");
  }
  // softmax1 and the sink logit: cuDNN's softmax, their virtual logit folded in afterwards
  // (attention_forward.cu; the backward is softmax's with their lse, attention_backward.cu).
  if (spec.normalizer != AttentionNormalizer::kSoftmax &&
      spec.normalizer != AttentionNormalizer::kSoftmax1 &&
      spec.normalizer != AttentionNormalizer::kSinkLogit) {
    return refuse("not softmax, softmax1 or the sink logit");
  }
  if (q.dtype() != DType::kBF16 || k.dtype() != DType::kBF16) return refuse("not bf16");
  if (q.rank() != 4 || k.rank() != 4 || k.dim(1) != q.dim(1)) {
    return refuse("keys other than the S queries' own (KV bias)");
  }
  if (!cudnn_attention_) cudnn_attention_ = std::make_unique<CudnnAttention>(stream_);
  const CudnnAttentionShape shape = CudnnShapeOf(q, k);
  return backward ? cudnn_attention_->BackwardSupported(shape, why)
                  : cudnn_attention_->ForwardSupported(shape, why);
#else
  return refuse("sinklab was built without cuDNN");
#endif
}

bool CudaBackend::TryCudnnAttentionForward(const Tensor& out, const Tensor& probs,
                                           const Tensor& lse, const Tensor& unclipped_values,
                                           const Tensor& q, const Tensor& k, const Tensor& v,
                                           const AttentionSpec& spec) {
#if SINKLAB_WITH_CUDNN
  // probs asked for (a statistics step) or unclipped_values: ours.
  if (!probs.empty() || !unclipped_values.empty()) return false;
  if (!Aligned16({&out, &lse, &q, &k, &v})) return false;
  if (!UsesCudnnAttention(q, k, spec, /*backward=*/false)) return false;
  const CudnnAttentionShape shape = CudnnShapeOf(q, k);
  void* workspace = Workspace(cudnn_attention_->ForwardWorkspaceBytes(shape));
  return cudnn_attention_->Forward(shape, spec.scale, out, lse, q, k, v, workspace);
#else
  return false;
#endif
}

bool CudaBackend::TryCudnnAttentionBackward(const Tensor& dq, const Tensor& dk, const Tensor& dv,
                                            const Tensor& dout, const Tensor& q, const Tensor& k,
                                            const Tensor& v, const Tensor& out,
                                            const Tensor& unclipped_values, const Tensor& lse,
                                            const AttentionSpec& spec, GradWrite dqkv_write) {
#if SINKLAB_WITH_CUDNN
  if (dq.empty() || dk.empty() || dv.empty() || !unclipped_values.empty()) return false;
  if (!Aligned16({&dq, &dk, &dv, &dout, &q, &k, &v, &out, &lse})) return false;
  if (!UsesCudnnAttention(q, k, spec, /*backward=*/true)) return false;
  const CudnnAttentionShape shape = CudnnShapeOf(q, k);
  // cuDNN overwrites every element of its gradients, in the layouts of q, k, v (GQA's sums
  // over head groups are in its graph; no KV bias here, K = S). kAssign: straight into dq,
  // dk, dv (a failed run leaves them partly written; the caller then overwrites them).
  if (dqkv_write == GradWrite::kAssign) {
    void* workspace = Workspace(cudnn_attention_->BackwardWorkspaceBytes(shape));
    return cudnn_attention_->Backward(shape, spec.scale, dq, dk, dv, dout, q, k, v, out, lse,
                                      workspace);  // false: logged; ours runs
  }
  // kAccumulate: cuDNN writes scratch behind its own workspace, then each is added.
  const size_t engine = AlignUp256(cudnn_attention_->BackwardWorkspaceBytes(shape));
  const size_t q_bytes = AlignUp256(dq.nbytes()), kv_bytes = AlignUp256(dk.nbytes());
  char* workspace = static_cast<char*>(Workspace(engine + q_bytes + 2 * kv_bytes));
  const Tensor dq_new = ScratchLike(workspace + engine, dq);
  const Tensor dk_new = ScratchLike(workspace + engine + q_bytes, dk);
  const Tensor dv_new = ScratchLike(workspace + engine + q_bytes + kv_bytes, dv);
  if (!cudnn_attention_->Backward(shape, spec.scale, dq_new, dk_new, dv_new, dout, q, k, v, out,
                                  lse, workspace)) {
    return false;  // logged; ours runs (dq, dk, dv untouched)
  }
  AddInto(dq, dq_new);
  AddInto(dk, dk_new);
  AddInto(dv, dv_new);
  return true;
#else
  return false;
#endif
}

}  // namespace sinklab

// CudaBackend's cuDNN attention path (cuda_backend.h): whether cuDNN runs an attention
// (AttentionSpec::allow_library_kernel, from model.attention.kernel AUTO, and a variant and
// shape cuDNN has a plan for), and the forward and backward through CudnnAttention
// (cudnn_attention.h), with the KV bias key's share of the backward (attention_extra_keys.h).
// Without cuDNN (SINKLAB_WITH_CUDNN unset) the path is absent.
#include <cstdint>
#include <string>

#include "absl/strings/str_cat.h"
#include "core/status.h"
#include "layers/cuda/attention_extra_keys.h"
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
  shape.kv_rows = k.dim(1);  // S, or S + 1 with the KV bias key (row 0, not cuDNN's)
  shape.q_rows = shape.seq;
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

}  // namespace
#endif  // SINKLAB_WITH_CUDNN

bool CudaBackend::CudnnAllows(const Tensor& q, const Tensor& k, const AttentionSpec& spec,
                              std::string* why) {
  const auto refuse = [why](const std::string& reason) {
    if (why != nullptr) *why = reason;
    return false;
  };
#if SINKLAB_WITH_CUDNN
  if (!spec.allow_library_kernel) {
    return refuse("sinklab's kernels asked for (model.attention.kernel: SINKLAB)");
  }
  // softmax1, the sink logit and the KV bias: cuDNN's softmax over the S real keys, the
  // virtual logit and the bias key folded in afterwards (attention_extra_keys.h).
  if (spec.normalizer != AttentionNormalizer::kSoftmax &&
      spec.normalizer != AttentionNormalizer::kSoftmax1 &&
      spec.normalizer != AttentionNormalizer::kSinkLogit) {
    return refuse("not softmax, softmax1 or the sink logit");
  }
  if (q.dtype() != DType::kBF16 || k.dtype() != DType::kBF16) return refuse("not bf16");
  if (q.rank() != 4 || k.rank() != 4 || (k.dim(1) != q.dim(1) && k.dim(1) != q.dim(1) + 1)) {
    return refuse("keys other than the S queries' own and at most one KV-bias key");
  }
  if (!cudnn_attention_) cudnn_attention_ = std::make_unique<CudnnAttention>(stream_);
  return true;
#else
  return refuse("sinklab was built without cuDNN");
#endif
}

bool CudaBackend::CudnnBackwardShape(const Tensor& q, const Tensor& k, const AttentionSpec& spec,
                                     CudnnAttentionShape* shape, std::string* why) {
#if SINKLAB_WITH_CUDNN
  if (!CudnnAllows(q, k, spec, why)) return false;
  *shape = CudnnShapeOf(q, k);
  std::string full_why;
  if (cudnn_attention_->BackwardSupported(*shape, &full_why)) return true;
  // The lead rows: cuDNN on the last S - r rows, the first r as extra keys of every query.
  const int64_t lead = shape->seq % 128;
  CudnnAttentionShape block = *shape;
  block.seq -= lead;
  std::string block_why = absl::StrCat("no lead rows to split off (K != S, S % 128 = 0, or ",
                                       "S % 128 > ", cuda::kMaxLeadRows, ")");
  if (shape->kv_rows == shape->seq && lead > 0 && lead <= cuda::kMaxLeadRows && block.seq >= 128 &&
      cudnn_attention_->BackwardSupported(block, &block_why)) {
    *shape = block;
    return true;
  }
  if (why != nullptr) *why = absl::StrCat(full_why, "; on all but the lead rows: ", block_why);
  return false;
#else
  (void)shape;
  return CudnnAllows(q, k, spec, why);
#endif
}

bool CudaBackend::CudnnBackwardRunsEveryRow(const Tensor& q, const Tensor& k,
                                            const AttentionSpec& spec) {
#if SINKLAB_WITH_CUDNN
  CudnnAttentionShape shape;
  return CudnnBackwardShape(q, k, spec, &shape, nullptr) && shape.q_rows == shape.seq;
#else
  return false;
#endif
}

bool CudaBackend::UsesCudnnAttention(const Tensor& q, const Tensor& k, const AttentionSpec& spec,
                                     bool backward, std::string* why) {
#if SINKLAB_WITH_CUDNN
  if (backward) {
    CudnnAttentionShape shape;
    return CudnnBackwardShape(q, k, spec, &shape, why);
  }
  return CudnnAllows(q, k, spec, why) &&
         cudnn_attention_->ForwardSupported(CudnnShapeOf(q, k), why);
#else
  (void)backward;
  return CudnnAllows(q, k, spec, why);
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
  CudnnAttentionShape shape;
  if (!CudnnBackwardShape(q, k, spec, &shape, nullptr)) return false;
  const bool bias_key = shape.kv_rows > shape.q_rows;
  const int lead = static_cast<int>(shape.skipped_queries());
  // Workspace: cuDNN's engine, the bias key's or the lead rows' scratch, and with kAccumulate
  // the gradients written before they are added (cuDNN and the extra keys' dk, dv overwrite
  // theirs).
  const size_t engine = AlignUp256(cudnn_attention_->BackwardWorkspaceBytes(shape));
  const size_t bias_bytes =
      bias_key ? AlignUp256(cuda::BiasKeyBackwardScratchBytes(q, k))
               : (lead > 0 ? AlignUp256(cuda::LeadRowsBackwardScratchBytes(q, k, lead)) : 0);
  const bool accumulate = dqkv_write == GradWrite::kAccumulate;
  const size_t q_bytes = accumulate ? AlignUp256(dq.nbytes()) : 0;
  const size_t kv_bytes = accumulate ? AlignUp256(dk.nbytes()) : 0;
  char* workspace = static_cast<char*>(Workspace(engine + bias_bytes + q_bytes + 2 * kv_bytes));
  char* grads = workspace + engine + bias_bytes;
  // kAssign: straight into dq, dk, dv (a failed run leaves them partly written; the caller
  // then overwrites them).
  const Tensor dq_new = accumulate ? ScratchLike(grads, dq) : dq;
  const Tensor dk_new = accumulate ? ScratchLike(grads + q_bytes, dk) : dk;
  const Tensor dv_new = accumulate ? ScratchLike(grads + q_bytes + kv_bytes, dv) : dv;
  if (!cudnn_attention_->Backward(shape, spec.scale, dq_new, dk_new, dv_new, dout, q, k, v, out,
                                  lse, workspace)) {
    return false;  // logged; ours runs
  }
  const float* cudnn_d = cudnn_attention_->SoftmaxSum(shape, workspace);
  if (bias_key) {
    cuda::LaunchBiasKeyBackward(stream_, workspace + engine, dq_new, dk_new, dv_new, Tensor(),
                                Tensor(), dout, q, k, v, Tensor(), Tensor(), out, lse, cudnn_d,
                                spec.scale);
  } else if (lead > 0) {
    cuda::LaunchLeadRowsBackward(stream_, workspace + engine, lead, dq_new, dk_new, dv_new, dout, q,
                                 k, v, out, lse, cudnn_d, spec.scale);
  }
  if (accumulate) {
    AddInto(dq, dq_new);
    AddInto(dk, dk_new);
    AddInto(dv, dv_new);
  }
  return true;
#else
  return false;
#endif
}

bool CudaBackend::TryCudnnAttentionBackwardBiasApart(
    const Tensor& dq, const Tensor& dk, const Tensor& dv, const Tensor& dk_bias,
    const Tensor& dv_bias, const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v,
    const Tensor& k_bias, const Tensor& v_bias, const Tensor& out, const Tensor& lse,
    const AttentionSpec& spec) {
#if SINKLAB_WITH_CUDNN
  if (!Aligned16({&dq, &dk, &dv, &dout, &q, &k, &v, &out, &lse, &k_bias, &v_bias})) return false;
  if (!CudnnBackwardRunsEveryRow(q, k, spec)) return false;
  const CudnnAttentionShape shape = CudnnShapeOf(q, k);
  const size_t engine = AlignUp256(cudnn_attention_->BackwardWorkspaceBytes(shape));
  char* workspace =
      static_cast<char*>(Workspace(engine + AlignUp256(cuda::BiasKeyBackwardScratchBytes(q, k))));
  if (!cudnn_attention_->Backward(shape, spec.scale, dq, dk, dv, dout, q, k, v, out, lse,
                                  workspace)) {
    return false;  // logged; the caller runs ours
  }
  cuda::LaunchBiasKeyBackward(stream_, workspace + engine, dq, Tensor(), Tensor(), dk_bias, dv_bias,
                              dout, q, k, v, k_bias, v_bias, out, lse,
                              cudnn_attention_->SoftmaxSum(shape, workspace), spec.scale);
  return true;
#else
  return false;
#endif
}

}  // namespace sinklab

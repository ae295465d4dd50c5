// The logits cuDNN's softmax attention does not see, folded in around it by CudaBackend when
// cuDNN runs softmax1, the sink logit or the KV bias (attention_cudnn.cc):
// - the virtual logit c_h of softmax1 (0) or of the sink logit (b_h): a key with no value;
// - the KV bias key (Sun et al. 2024): row 0 of k and v [B, S + 1, Hkv, d], seen by every
//   query with the logit s'_i = scale q_i . k' and the value v' of its kv head.
// Forward: cuDNN's out and lse over the S real keys become those over all keys:
//   lse' = log(e^lse + e^c + e^s'),  out' = out e^(lse - lse') + e^(s' - lse') v'.
// Backward: cuDNN's softmax backward run with lse' and out' gives the real keys' dq, dk, dv
// exactly (it forms p_ij = e^(s_ij - lse'), and D_i = dout_i . out'_i already counts the
// extra keys); the bias key's share is added after it:
//   p'_i = e^(s'_i - lse'_i),  dS'_i = p'_i (dout_i . v' - D_i),  dq_i += scale dS'_i k',
//   dk' = scale sum_i dS'_i q_i,  dv' = sum_i p'_i dout_i
// (sums over the queries of one batch row and the query heads of the kv head, in a fixed
// order). bf16 tensors, lse f32 [B, H, S]; everything runs on `stream`.
#ifndef SINKLAB_LAYERS_CUDA_ATTENTION_EXTRA_KEYS_H_
#define SINKLAB_LAYERS_CUDA_ATTENTION_EXTRA_KEYS_H_

#include <cuda_runtime.h>

#include <cstddef>

#include "core/tensor.h"
#include "layers/backend.h"

namespace sinklab {
namespace cuda {

// out [B, S, H, d] and lse of cuDNN's softmax over keys 1.. of k (KV bias: K = S + 1) or over
// all of them (K = S), updated in place to those of spec's normalizer over every key.
void LaunchFoldExtraKeys(cudaStream_t stream, const Tensor& out, const Tensor& lse,
                         const Tensor& q, const Tensor& k, const Tensor& v,
                         const Tensor& sink_logit, const AttentionSpec& spec);

// Device scratch bytes LaunchBiasKeyBackward needs for q [B, S, H, d].
size_t BiasKeyBackwardScratchBytes(const Tensor& q);
// The bias key's share of the backward (K = S + 1): dq += its part, rows 0 of dk and dv
// [B, K, Hkv, d] OVERWRITTEN with dk' and dv' of each batch row; out and lse as folded.
void LaunchBiasKeyBackward(cudaStream_t stream, void* scratch, const Tensor& dq, const Tensor& dk,
                           const Tensor& dv, const Tensor& dout, const Tensor& q, const Tensor& k,
                           const Tensor& v, const Tensor& out, const Tensor& lse, float scale);

}  // namespace cuda
}  // namespace sinklab

#endif  // SINKLAB_LAYERS_CUDA_ATTENTION_EXTRA_KEYS_H_

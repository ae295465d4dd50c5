// The logits cuDNN's softmax attention does not see, folded in around it by CudaBackend when
// cuDNN runs softmax1, the sink logit or the KV bias (attention_cudnn.cc):
// - the virtual logit c_h of softmax1 (0) or of the sink logit (b_h): a key with no value;
// - the KV bias key (Sun et al. 2024), seen by every query with the logit s'_i = scale q_i .
//   k' and the value v' of its kv head.
// Forward: cuDNN's out and lse over the S real keys become those over all keys:
//   lse' = log(e^lse + e^c + e^s'),  out' = out e^(lse - lse') + e^(s' - lse') v'.
// Backward: cuDNN's softmax backward run with lse' and out' gives the real keys' dq, dk, dv
// exactly (it forms p_ij = e^(s_ij - lse'), and D_i = dout_i . out'_i already counts the
// extra keys); the bias key's share is added after it:
//   p'_i = e^(s'_i - lse'_i),  dS'_i = p'_i (dout_i . v' - D_i),  dq_i += scale dS'_i k',
//   dk' = scale sum_i dS'_i q_i,  dv' = sum_i p'_i dout_i
// (sums over the queries of one batch row and the query heads of the kv head, in a fixed
// order). bf16 tensors, lse f32 [B, H, S]; everything runs on `stream`.
//
// The lead rows: where cuDNN has no backward plan for S but one for S - r (r = S % 128 with
// cuDNN <= 9.15; the P prefix sink tokens of a 1024-token sequence, say), its backward runs
// on the last S - r rows (queries and keys) of each sequence with lse and out over all S
// keys, and the first r rows are keys of every query apart from it, the same way (query i
// sees key j < r when j <= i; the r lead queries see only them):
//   p_ij = e^(s_ij - lse_i),  dS_ij = p_ij (dout_i . v_j - D_i),  dq_i (+)= scale sum_j dS_ij
//   k_j,  dk_j = scale sum_i dS_ij q_i,  dv_j = sum_i p_ij dout_i.
#ifndef SINKLAB_LAYERS_CUDA_ATTENTION_EXTRA_KEYS_H_
#define SINKLAB_LAYERS_CUDA_ATTENTION_EXTRA_KEYS_H_

#include <cuda_runtime.h>

#include <cstddef>

#include "core/tensor.h"
#include "layers/backend.h"

namespace sinklab {
namespace cuda {

// The bias key and value are row 0 of k, v [B, S + 1, Hkv, d] when k_bias and v_bias are
// empty, else k_bias, v_bias [Hkv, d] (the same for every b; "apart", k and v [B, S, Hkv, d]).

// out [B, S, H, d] and lse of cuDNN's softmax over the S real keys, updated in place to those
// of spec's normalizer over every key.
void LaunchFoldExtraKeys(cudaStream_t stream, const Tensor& out, const Tensor& lse, const Tensor& q,
                         const Tensor& k, const Tensor& v, const Tensor& k_bias,
                         const Tensor& v_bias, const Tensor& sink_logit, const AttentionSpec& spec);

// Device scratch bytes LaunchBiasKeyBackward needs for q [B, S, H, d] and k [B, K, Hkv, d].
size_t BiasKeyBackwardScratchBytes(const Tensor& q, const Tensor& k);
// The bias key's share of the backward: dq += its part; then rows 0 of dk and dv [B, S + 1,
// Hkv, d] OVERWRITTEN with each b's dk', dv' (dk_bias, dv_bias empty), or, apart, dk_bias and
// dv_bias [Hkv, d] f32 += their sums over b (dk, dv unread). out and lse as folded; cudnn_d:
// D_i = dout_i . out_i [B, H, S] f32 as cuDNN's backward computed it (its softmax_sum), or
// nullptr (then computed here from out).
void LaunchBiasKeyBackward(cudaStream_t stream, void* scratch, const Tensor& dq, const Tensor& dk,
                           const Tensor& dv, const Tensor& dk_bias, const Tensor& dv_bias,
                           const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v,
                           const Tensor& k_bias, const Tensor& v_bias, const Tensor& out,
                           const Tensor& lse, const float* cudnn_d, float scale);

// The most lead rows LaunchLeadRowsBackward takes (each is a key every row's lanes visit).
constexpr int kMaxLeadRows = 16;
// Device scratch bytes LaunchLeadRowsBackward needs for q [B, S, H, d], k [B, S, Hkv, d].
size_t LeadRowsBackwardScratchBytes(const Tensor& q, const Tensor& k, int lead);
// The first `lead` rows' share of the backward after cuDNN's on the others (dq, dk, dv the
// same tensors, lse and out over all S keys): dq += it for the rows cuDNN ran, dq of the lead
// rows and rows 0 .. lead - 1 of dk, dv [B, S, Hkv, d] OVERWRITTEN. cudnn_d: D_i of cuDNN's
// rows [B, H, S - lead] f32 (its softmax_sum), or nullptr.
void LaunchLeadRowsBackward(cudaStream_t stream, void* scratch, int lead, const Tensor& dq,
                            const Tensor& dk, const Tensor& dv, const Tensor& dout, const Tensor& q,
                            const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& lse,
                            const float* cudnn_d, float scale);

}  // namespace cuda
}  // namespace sinklab

#endif  // SINKLAB_LAYERS_CUDA_ATTENTION_EXTRA_KEYS_H_

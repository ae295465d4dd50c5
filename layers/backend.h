// Backend: the kernel interface every layer calls (DESIGN.md section 2). Layers are
// device-agnostic; `CpuBackend` (layers/cpu/, fp32 reference) and a CUDA backend
// (layers/cuda/, later) implement it.
//
// Conventions (as llm.c's train_gpt2.c):
// - Outputs first, then inputs, then cached tensors; shapes in each method's comment.
// - Forward kernels overwrite their outputs.
// - Backward kernels ACCUMULATE (+=) into every gradient they produce, both parameter
//   gradients and input gradients, so a tensor used twice just works; the caller zeroes
//   gradient buffers (Fill) before the first contribution. The one exception is
//   CrossEntropyBackward, which overwrites dlogits (and may do so in place over logits).
// - An empty Tensor as a gradient output means "not needed": the kernel skips it.
// - Activations have dtype activation_dtype(); parameters' fp32 `master`/`grad` and the
//   `compute` copy the kernels read are described in layers/parameter.h. Per-row
//   statistics (rstd, log-sum-exp, losses) are fp32 on every backend.
// - Row-major layouts. N = B * T rows (tokens); activations [N, C] are [B, T, C].
//   Attention heads live inside a row: q is [B, T, H, d_h] = [N, H * d_h], exactly what
//   the projection q = x W_q^T produces, so no transpose is ever needed.
// - Every kernel is deterministic: the same inputs give bit-identical outputs, whatever
//   the number of threads (each output element is computed by one thread in a fixed order).
#ifndef SINKLAB_LAYERS_BACKEND_H_
#define SINKLAB_LAYERS_BACKEND_H_

#include <cstdint>
#include <functional>
#include <string>

#include "core/device.h"
#include "core/dtype.h"
#include "core/tensor.h"

namespace sinklab {

// How attention scores s_ij = q_i . k_j * scale (causal) become weights p_ij, per query row
// over the keys j the query sees (DESIGN.md section 5). Each backend implements all of them
// in one normalizer switch. Every kernel also stores, per row, `lse`: the log of the row's
// normalizer including the virtual term, from which statistics recompute one weight
// (DESIGN.md section 6) as written after each variant.
enum class AttentionNormalizer {
  // p_ij = exp(s_ij) / sum_k exp(s_ik) (Vaswani et al. 2017).
  // lse = log sum_k exp(s_ik);  p_ij = exp(s_ij - lse).
  kSoftmax,
  // p_ij = exp(s_ij) / (1 + sum_k exp(s_ik)) (Miller 2023, "Attention is off by one").
  // lse = log(1 + sum_k exp(s_ik));  p_ij = exp(s_ij - lse); virtual mass exp(-lse).
  kSoftmax1,
  // p_ij = exp(s_ij) / (exp(b_h) + sum_k exp(s_ik)), b_h learned per query head (gpt-oss).
  // lse = log(exp(b_h) + sum_k exp(s_ik));  p_ij = exp(s_ij - lse); virtual mass
  // exp(b_h - lse).
  kSinkLogit,
  // p_ij = relu(exp(s_ij) - 1) / (sum_k |exp(s_ik) - 1| + eps) (Zuhri et al. 2025), the
  // masked keys in neither sum. lse = log(sum_k |exp(s_ik) - 1| + eps);
  // p_ij = relu(exp(s_ij - lse) - exp(-lse)).
  kSoftpick,
  // p_ij = sigmoid(s_ij + b), no normalization (Ramapuram et al. 2024). lse = log sum_k p_ik
  // (the row's total mass); p_ij = sigmoid(s_ij + b) needs no lse.
  kSigmoid,
  // p_ij = clip((zeta - gamma) softmax(s_i.)_j + gamma, 0, 1) (Bondarenko et al. 2023).
  // lse = log sum_k exp(s_ik) (the softmax's); p_ij = clip((zeta - gamma) exp(s_ij - lse)
  // + gamma, 0, 1).
  kClippedSoftmax,
};

// Everything an attention kernel needs besides its tensors (fields of other normalizers are
// ignored).
struct AttentionSpec {
  AttentionNormalizer normalizer = AttentionNormalizer::kSoftmax;
  float scale = 1.0f;          // 1 / sqrt(d_h) (Vaswani et al. 2017, eq. 1)
  float softpick_eps = 1e-6f;  // kSoftpick
  float sigmoid_bias = 0.0f;   // kSigmoid: b, resolved (-ln(number of keys) by default)
  float clip_gamma = -0.03f;   // kClippedSoftmax: gamma <= 0
  float clip_zeta = 1.0f;      // kClippedSoftmax: zeta >= 1
  // A backend may run a library's fused attention where it applies (CUDA: cuDNN's for plain
  // softmax; model.attention.kernel AUTO); false: the backend's own kernels.
  bool allow_library_kernel = false;
};

// The fields of one query row i of AttentionRowStats (weights p_ij of AttentionNormalizer).
enum AttentionRowStat : int {
  kRowDataTokenZero = 0,  // p_ij on data token 0 (key K - S + P; 0 for prefix rows)
  kRowBiasKey,            // sum of p_ij over the K - S KV-bias keys (0 without)
  kRowPrefixMass,         // sum of p_ij over the P prefix keys
  kRowTotalMass,          // sum of p_ij over every key the row sees (1 - virtual mass)
  kRowEntropy,            // -sum_j p_ij ln p_ij in nats, 0 ln 0 = 0
  kAttentionRowStatFields,
};

// How a backward method writes an input gradient (see MatmulBackward).
enum class GradWrite { kAssign, kAccumulate };

class Backend {
 public:
  virtual ~Backend() = default;

  // Where this backend's tensors live and the dtype of its activations (F32 on the CPU).
  virtual Device device() const = 0;
  virtual DType activation_dtype() const = 0;
  // Whether AttentionBackward reads the probs of AttentionForward (the CPU reference does;
  // a fused kernel recomputes them from lse). When false, callers pass an empty probs
  // tensor to AttentionForward except when they capture the weights for statistics.
  virtual bool attention_backward_reads_probs() const { return true; }

  // ---- Small helpers ------------------------------------------------------------------
  // x[i] = value for every element (f32 or activation dtype).
  virtual void Fill(const Tensor& x, float value) = 0;
  // dst = src, same shape and dtype.
  virtual void Copy(const Tensor& dst, const Tensor& src) = 0;
  // dst = src converted to dst's dtype (F32 <-> BF16, or a plain copy); same numel.
  virtual void Convert(const Tensor& dst, const Tensor& src) = 0;
  // Host <-> device copies of dst.nbytes() / src.nbytes() bytes (host memory is plain).
  virtual void CopyFromHost(const Tensor& dst, const void* host_src) = 0;
  virtual void CopyToHost(void* host_dst, const Tensor& src) = 0;
  // dst += src, same shape (residual backward, gradient accumulation).
  virtual void AddInto(const Tensor& dst, const Tensor& src) = 0;
  // Sum of all elements of an f32 tensor, in double, returned to the host (synchronizes).
  virtual double SumToHost(const Tensor& x) = 0;
  // Number of entries >= 0 of an i32 tensor, returned to the host (synchronizes).
  virtual int64_t CountNonNegative(const Tensor& x) = 0;
  // out [1] f32 = sum(losses) / #(targets >= 0), 0 when no target counts, in double then
  // rounded: the mean loss, left on the device (no host read). losses [N] f32, targets [N] i32.
  virtual void MeanLoss(const Tensor& out, const Tensor& losses, const Tensor& targets) = 0;
  // Largest |x_i| of an f32 or activation-dtype tensor (NaNs skipped; 0 when empty),
  // returned to the host (synchronizes). Statistics reduce on the device with it.
  virtual double MaxAbsToHost(const Tensor& x) = 0;

  // ---- Recorded work ---------------------------------------------------------------------
  // Runs `enqueue`, which only queues this backend's kernels (no host reads or writes of
  // device memory, no other stream) on the same buffers and shapes at every call with this
  // `key`. The CUDA backend records it as a CUDA graph at the key's second call and replays
  // the graph afterwards, so one launch replaces its hundreds (the first call runs as is:
  // cuBLASLt's autotuning, cuDNN's plans and scratch growth happen there). This default
  // (the CPU) runs it.
  virtual void RunRecorded(const std::string& key, const std::function<void()>& enqueue) {
    (void)key;
    enqueue();
  }

  // ---- Matmul (a linear layer without bias) --------------------------------------------
  // How MatmulBackward writes dinp: kAssign overwrites it (its first writer in a backward
  // pass: no zero fill, and a GPU GEMM with beta 0 never reads it), kAccumulate adds (an
  // input read by several layers).
  // out [N, OC] = inp [N, C] @ weight[OC, C]^T, plus residual [N, OC] when it is not empty
  // (a block's residual add fused into its output projection; residual may alias out).
  virtual void MatmulForward(const Tensor& out, const Tensor& inp, const Tensor& weight,
                             const Tensor& residual) = 0;
  // dinp [N, C] (= or +=, dinp_write) dout [N, OC] @ weight [OC, C];
  // dweight [OC, C] += dout^T @ inp. dinp or dweight may be empty (skipped).
  virtual void MatmulBackward(const Tensor& dinp, const Tensor& dweight, const Tensor& dout,
                              const Tensor& inp, const Tensor& weight, GradWrite dinp_write) = 0;
  // A group of G linear layers reading one input (the gate and up projections; Q, K, V),
  // with adjacent weights and outputs: outs [G, N, OC] = inp [N, C] @ weights[g]^T for
  // weights [G, OC, C]. GPUs run one strided-batched GEMM (the input shared by the batch);
  // this default, the reference, runs MatmulForward per layer.
  virtual void MatmulForwardGroup(const Tensor& outs, const Tensor& inp, const Tensor& weights) {
    for (int64_t g = 0; g < weights.dim(0); ++g) {
      MatmulForward(outs.Index0(g), inp, weights.Index0(g), Tensor());
    }
  }
  // dweights[g] [OC, C] += douts[g] [N, OC]^T @ inp [N, C] for each g (the group's weight
  // gradients; their input gradients are separate MatmulBackward calls).
  virtual void MatmulWeightGradGroup(const Tensor& dweights, const Tensor& douts,
                                     const Tensor& inp) {
    for (int64_t g = 0; g < dweights.dim(0); ++g) {
      // With no dinp, the weight argument only gives the shape.
      MatmulBackward(Tensor(), dweights.Index0(g), douts.Index0(g), inp, dweights.Index0(g),
                     GradWrite::kAssign);
    }
  }

  // ---- Token embedding -----------------------------------------------------------------
  // out [N, D] = table [V, D][tokens [N] i32]. Token ids outside [0, V) are a CHECK failure.
  virtual void EmbeddingForward(const Tensor& out, const Tensor& tokens, const Tensor& table) = 0;
  // dtable [V, D] += scatter of dout [N, D] into the rows named by tokens [N].
  virtual void EmbeddingBackward(const Tensor& dtable, const Tensor& dout,
                                 const Tensor& tokens) = 0;

  // ---- RMSNorm (Zhang & Sennrich 2019): y = x * rstd * w, rstd = 1/sqrt(mean(x^2) + eps)
  // out [N, D], rstd [N] f32 (cached for the backward), inp [N, D], weight [D].
  virtual void RmsNormForward(const Tensor& out, const Tensor& rstd, const Tensor& inp,
                              const Tensor& weight, float eps) = 0;
  // dinp [N, D] = or += (dinp_write), dweight [D] += (either may be empty: skipped); dout,
  // inp [N, D]; weight [D]; rstd [N] from Forward.
  virtual void RmsNormBackward(const Tensor& dinp, const Tensor& dweight, const Tensor& dout,
                               const Tensor& inp, const Tensor& weight, const Tensor& rstd,
                               GradWrite dinp_write) = 0;

  // ---- Rotary position embedding (Su et al. 2021), rotate-half convention exactly as
  // Hugging Face Llama apply_rotary_pos_emb: for head dim d and i < d/2 the pair
  // (x_i, x_{i+d/2}) at position t is rotated by angle t * theta_i, theta_i = base^(-2i/d):
  //   x'_i       = x_i cos - x_{i+d/2} sin
  //   x'_{i+d/2} = x_{i+d/2} cos + x_i sin
  // out, inp: [B, T, H, d] (out may alias inp); cos, sin: [T, d/2] f32 tables (see
  // layers/rope.h); the position of row (b, t) is t.
  virtual void RopeForward(const Tensor& out, const Tensor& inp, const Tensor& cos,
                           const Tensor& sin) = 0;
  // dinp [B, T, H, d] = or += (dinp_write) R(t)^T dout (the inverse rotation); dinp must not
  // alias dout.
  virtual void RopeBackward(const Tensor& dinp, const Tensor& dout, const Tensor& cos,
                            const Tensor& sin, GradWrite dinp_write) = 0;

  // ---- QK-norm then RoPE (attention with qk_norm): out [B, T, H, d] = RoPE(RMSNorm over d
  // of inp, gain weight [d]), rstd [B T H] f32 as RmsNormForward's. The default runs the two
  // (RoPE in place on out); a backend may fuse them into one pass.
  virtual void RmsNormRopeForward(const Tensor& out, const Tensor& rstd, const Tensor& inp,
                                  const Tensor& weight, float eps, const Tensor& cos,
                                  const Tensor& sin) {
    RmsNormForward(out, rstd, inp, weight, eps);
    RopeForward(out, out, cos, sin);
  }
  // Its backward: dinp [B, T, H, d] overwritten, dweight [d] f32 +=. scratch [B, T, H, d]
  // holds the default's RoPE-backward output in between (a fusing backend leaves it unused).
  virtual void RmsNormRopeBackward(const Tensor& dinp, const Tensor& dweight, const Tensor& dout,
                                   const Tensor& inp, const Tensor& weight, const Tensor& rstd,
                                   const Tensor& cos, const Tensor& sin, const Tensor& scratch) {
    RopeBackward(scratch, dout, cos, sin, GradWrite::kAssign);
    RmsNormBackward(dinp, dweight, scratch, inp, weight, rstd, GradWrite::kAssign);
  }

  // ---- Causal multi-head attention with grouped-query attention (Ainslie et al. 2023) --
  // q [B, S, H, d], k and v [B, K, Hkv, d] with K >= S and Hkv dividing H; query head h
  // reads kv head h / (H / Hkv). The first K - S keys (the KV bias, Sun et al. 2024) are
  // visible to every query; query i sees keys j <= i + (K - S) (causal). out [B, S, H, d] =
  // sum_j p_ij v_j. sink_logit [H] f32: the learned b_h of kSinkLogit (else empty, unread).
  // Cached for the backward and for statistics: probs [B, H, S, K] f32 (the weights p_ij,
  // zero for keys the query does not see; may be empty, then not written, when
  // attention_backward_reads_probs() is false) and lse [B, H, S] f32 (see
  // AttentionNormalizer). unclipped_values [B, S, H, d] f32, kClippedSoftmax only (else
  // empty, unwritten): C_i = sum_j (p_ij - gamma) [0 < p_ij < 1] v_j, the output over the
  // keys whose weight is not clipped, gamma removed; the backward's row sum is dout_i . C_i.
  virtual void AttentionForward(const Tensor& out, const Tensor& probs, const Tensor& lse,
                                const Tensor& unclipped_values, const Tensor& q, const Tensor& k,
                                const Tensor& v, const Tensor& sink_logit,
                                const AttentionSpec& spec) = 0;
  // dq [B, S, H, d], dk, dv [B, K, Hkv, d] = or += (dqkv_write: kAssign overwrites every
  // element of each, KV-bias keys and whole GQA groups included, so they need no zero fill;
  // kAccumulate adds), dsink_logit [H] += always (a parameter gradient; kSinkLogit only, may
  // be empty otherwise); dout [B, S, H, d]; out [B, S, H, d] the Forward's output (the
  // row sum sum_j p_ij dp_ij = dout_i . out_i of the softmax family comes from it);
  // unclipped_values the Forward's (kClippedSoftmax: its row sum sum_j sm_ij dsm_ij =
  // dout_i . C_i, see layers/cpu/attention_normalizer.cc; else empty); the rest as Forward
  // (probs unread when attention_backward_reads_probs() is false).
  virtual void AttentionBackward(const Tensor& dq, const Tensor& dk, const Tensor& dv,
                                 const Tensor& dsink_logit, const Tensor& dout, const Tensor& q,
                                 const Tensor& k, const Tensor& v, const Tensor& sink_logit,
                                 const Tensor& out, const Tensor& unclipped_values,
                                 const Tensor& probs, const Tensor& lse, const AttentionSpec& spec,
                                 GradWrite dqkv_write) = 0;
  // The KV bias with its key apart (an optional fast path): the attention AttentionForward
  // and AttentionBackward compute for k, v = PrependRows(k_bias, k), PrependRows(v_bias, v)
  // (K = S + 1; spec as for that K), given k, v [B, S, Hkv, d] and the bias key and value
  // k_bias, v_bias [Hkv, d] (the same for every b) apart, so the caller makes no [B, S + 1]
  // copies. No probs, no unclipped_values. A backend without the path returns false, doing
  // nothing: the caller then prepends the rows and calls AttentionForward. After a forward
  // that returned true the backward must be AttentionBackwardBiasApart: dq, dk, dv [B, S, ...]
  // overwritten, dk_bias, dv_bias [Hkv, d] f32 += the bias key's gradients summed over b,
  // dsink_logit += as AttentionBackward's.
  virtual bool AttentionForwardBiasApart(const Tensor& out, const Tensor& lse, const Tensor& q,
                                         const Tensor& k, const Tensor& v, const Tensor& k_bias,
                                         const Tensor& v_bias, const Tensor& sink_logit,
                                         const AttentionSpec& spec) {
    return false;
  }
  virtual void AttentionBackwardBiasApart(const Tensor& dq, const Tensor& dk, const Tensor& dv,
                                          const Tensor& dk_bias, const Tensor& dv_bias,
                                          const Tensor& dsink_logit, const Tensor& dout,
                                          const Tensor& q, const Tensor& k, const Tensor& v,
                                          const Tensor& k_bias, const Tensor& v_bias,
                                          const Tensor& sink_logit, const Tensor& out,
                                          const Tensor& lse, const AttentionSpec& spec) {
    SL_CHECK_MSG(false, "AttentionBackwardBiasApart without a forward that took the path");
  }
  // Per-query-row statistics of the last AttentionForward's weights (DESIGN.md section 6),
  // without a [S, K] matrix: row_stats [B, H, S, kAttentionRowStatFields] f32, the fields of
  // AttentionRowStat for every row (prefix rows included), sums over the row's causal keys.
  // prefix_tokens P: keys K - S .. K - S + P - 1 are the prefix, key K - S + P data token 0.
  // probs: the Forward's weights, read where attention_backward_reads_probs() (the CPU
  // reference reduces them); other backends ignore it and recompute each weight from q, k
  // and lse with their normalizer. q, k, lse, sink_logit, spec: as AttentionForward.
  virtual void AttentionRowStats(const Tensor& row_stats, const Tensor& probs, const Tensor& q,
                                 const Tensor& k, const Tensor& lse, const Tensor& sink_logit,
                                 const AttentionSpec& spec, int64_t prefix_tokens) = 0;

  // ---- Rows prepended to every sequence (prefix sink tokens, KV bias) -------------------
  // out [B, P + S, ...] = (prefix [P, ...], inp [B, S, ...]) along dim 1, the same prefix
  // rows for every b; any dtype (the three the same); trailing dims flattened to C.
  virtual void PrependRows(const Tensor& out, const Tensor& prefix, const Tensor& inp) = 0;
  // dprefix [P, C] += sum_b dout[b, :P];  dinp [B, S, C] += dout[b, P:] (f32; either may
  // be empty, not both).
  virtual void PrependRowsBackward(const Tensor& dprefix, const Tensor& dinp,
                                   const Tensor& dout) = 0;

  // ---- Sigmoid gate of gated attention (Qiu et al. 2025) ------------------------------
  // gate [N, G] = sigmoid(logits [N, G]) (gate may alias logits); out = y * gate with
  // y, out [N, C] (any shape of N * C elements), gate g covering channels [g c, (g+1) c),
  // c = C / G.
  virtual void SigmoidGateForward(const Tensor& out, const Tensor& gate, const Tensor& y,
                                  const Tensor& logits) = 0;
  // dy [N, C] (+)= dout * gate;  dlogits [N, G] (+)= gate (1 - gate) sum_{its c channels}
  // dout * y: both overwritten (kAssign) or both added to (kAccumulate). Either output may be
  // empty.
  virtual void SigmoidGateBackward(const Tensor& dy, const Tensor& dlogits, const Tensor& dout,
                                   const Tensor& y, const Tensor& gate, GradWrite write) = 0;

  // ---- SwiGLU (Shazeer 2020): out = silu(gate) * up, silu(x) = x / (1 + exp(-x)) -------
  // out, gate, up: [N, F].
  virtual void SwigluForward(const Tensor& out, const Tensor& gate, const Tensor& up) = 0;
  // dgate, dup [N, F] = (overwritten; either may be empty: skipped); dout, gate, up [N, F].
  virtual void SwigluBackward(const Tensor& dgate, const Tensor& dup, const Tensor& dout,
                              const Tensor& gate, const Tensor& up) = 0;

  // ---- Cross-entropy over logits (the LM head's matmul is separate) ---------------------
  // losses [N] f32 = lse_n - logits[n, targets[n]] (0 where targets[n] == -1);
  // lse [N] f32 = log sum_v exp(logits[n, v]) cached for the backward;
  // logits [N, V]; targets [N] i32 in [0, V) or -1 (ignored).
  virtual void CrossEntropyForward(const Tensor& losses, const Tensor& lse, const Tensor& logits,
                                   const Tensor& targets) = 0;
  // dlogits [N, V] = (softmax(logits) - onehot(target)) * dloss, 0 on ignored rows.
  // OVERWRITES dlogits (no accumulation); dlogits may alias logits (in place).
  virtual void CrossEntropyBackward(const Tensor& dlogits, const Tensor& logits, const Tensor& lse,
                                    const Tensor& targets, float dloss) = 0;
  // Both in one call (training): CrossEntropyForward's losses and lse, then dlogits as
  // CrossEntropyBackward's with dloss = loss_scale / max(1, #targets >= 0), the gradient of
  // loss_scale * the mean loss. No host read (the count stays on the device); dlogits may
  // alias logits. This default is the reference: the two calls, the count read on the host.
  virtual void CrossEntropyForwardBackward(const Tensor& losses, const Tensor& lse,
                                           const Tensor& dlogits, const Tensor& logits,
                                           const Tensor& targets, float loss_scale) {
    CrossEntropyForward(losses, lse, logits, targets);
    const int64_t count = CountNonNegative(targets);
    CrossEntropyBackward(dlogits, logits, lse, targets,
                         loss_scale / static_cast<float>(count > 0 ? count : 1));
  }
};

}  // namespace sinklab

#endif  // SINKLAB_LAYERS_BACKEND_H_

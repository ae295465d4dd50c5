// Attention: causal multi-head self-attention with grouped-query attention, RoPE on q, k and
// every sink mitigation of DESIGN.md section 5 that lives inside attention:
//   q = RoPE(QkNorm(x Wq^T)),  k = RoPE(QkNorm(x Wk^T)),  v = x Wv^T  [* gate (G2)]
//   K = [k'; k], V = [v'; v]   (KV bias: one learned pair per kv head, key 0, no RoPE)
//   o = Attn(q, K, V) (normalizer: spec)  [* gate (G1)],   y = o Wo^T
// Weights: wq [H*d_h, D], wk and wv [Hkv*d_h, D], wo [D, H*d_h] (H*d_h = D); optional
// q_norm, k_norm [d_h] (Dehghani et al. 2023), sink_logit [H] (gpt-oss 2025), kv_bias_k,
// kv_bias_v [Hkv, d_h] (Sun et al. 2024), w_gate [G, D] (Qiu et al. 2025).
// Activations are [B, S, H, d_h] = [N, H*d_h] (layers/backend.h); keys K = bias_keys + S.
#ifndef SINKLAB_LAYERS_ATTENTION_H_
#define SINKLAB_LAYERS_ATTENTION_H_

#include <memory>
#include <string>
#include <vector>

#include "configs/sinklab.pb.h"
#include "core/arena.h"
#include "layers/attention_gate.h"
#include "layers/backend.h"
#include "layers/linear.h"
#include "layers/make_parameter.h"
#include "layers/model_dims.h"
#include "layers/rmsnorm.h"
#include "layers/rope.h"

namespace sinklab {

class Attention {
 public:
  // Parameters "<prefix>.wq", ".wk", ".wv", ".wo", then those of the enabled variants in
  // this order: ".q_norm", ".k_norm", ".sink_logit", ".kv_bias_k", ".kv_bias_v", ".w_gate".
  // Buffers for a [batch, seq_len] input (seq_len = S, prefix tokens included; `rope` has
  // tables for S positions). `config` is the model config (attention sub-message, norm_eps).
  Attention(Backend* backend, Arena* arena, const std::string& prefix,
            const ModelConfig& config, int64_t batch, int64_t seq_len, const Rope* rope);
  ~Attention();

  // out [B, S, D] = residual + attention of inp [B, S, D] (residual empty: attention alone;
  // all owned by the caller; residual may alias out). Caches q, k
  // (normed, rotated), v, the keys/values with the bias pair, the gate values, the kernel
  // output, lse [B, H, S], clipped softmax's unclipped_values [B, S, H, d_h] (backend.h),
  // probs [B, H, S, K] where the backend's backward reads them, and while capturing, the
  // row statistics [B, H, S, kAttentionRowStatFields].
  void Forward(const Tensor& out, const Tensor& inp, const Tensor& residual);
  // dinp [B, S, D] = ... (overwritten); weight grads += ...; inp is the Forward input.
  void Backward(const Tensor& dinp, const Tensor& dout, const Tensor& inp);

  // wq, wk, wv, wo, then the variants' parameters (checkpoint order, see the constructor).
  std::vector<Parameter*> parameters();
  Parameter* output_projection() { return wo_.weight(); }
  // The learned sink logits b_h [H] (SINK_LOGIT) or nullptr.
  Parameter* sink_logit() { return sink_logit_.master.empty() ? nullptr : &sink_logit_; }
  // 1 with kv_bias (key 0 of every row is the bias key), else 0.
  int64_t bias_keys() const { return bias_keys_; }

  // Whether Forward writes the row statistics (statistics steps).
  void set_capture_statistics(bool capture) { capture_statistics_ = capture; }
  // The last Forward's per-query-row attention statistics [B, H, S, kAttentionRowStatFields]
  // (Backend::AttentionRowStats; stale unless that Forward captured), its weights
  // [B, H, S, K] (empty on a backend whose backward does not read them: the GPU never
  // materializes them) and row lse [B, H, S].
  const Tensor& row_stats() const { return row_stats_; }
  const Tensor& probs() const { return probs_; }
  const Tensor& lse() const { return lse_; }
  // The last Forward's values of the S positions [B, S, Hkv, d_h] (before a value gate) and
  // the input of wo [B, S, H * d_h] (after an output gate).
  const Tensor& v() const { return v_; }
  const Tensor& attention_output() const { return wo_in_; }
  // The gate's sigmoid values [B, S, G] and its W_g; empty / nullptr without a gate.
  Tensor gate_values() const;
  Parameter* gate_weight() { return gate_ ? gate_->weight() : nullptr; }

 private:
  Backend* backend_;
  const Rope* rope_;
  ModelDims dims_;
  AttentionSpec spec_;
  GateConfig::Position gate_position_;
  int64_t batch_, seq_len_, bias_keys_, prefix_tokens_;
  // With H == Hkv (plain multi-head attention) wq, wk, wv are one ParameterGroup and their
  // outputs (and gradients) adjacent [3, B, S, H, d_h] buffers: one grouped matmul projects
  // q, k and v, another gives the three weight gradients. Empty under GQA.
  ParameterGroup qkv_;
  Linear wq_, wk_, wv_, wo_;
  std::unique_ptr<RmsNorm> q_norm_, k_norm_;  // qk_norm: over d_h, rows [N*H] / [N*Hkv]
  Parameter sink_logit_;                      // [H] (SINK_LOGIT)
  Parameter kv_bias_k_, kv_bias_v_;           // [Hkv, d_h] (kv_bias)
  std::unique_ptr<AttentionGate> gate_;
  // [3, B, S, H, d] holding q_proj_, k_proj_, v_ and dq_proj_, dk_proj_, dv_ (grouped only).
  Tensor qkv_proj_, dqkv_proj_;
  // Forward caches; a name that a variant does not need aliases the previous stage.
  Tensor q_proj_, q_;           // x Wq^T; normed and rotated (the kernel's q)  [B, S, H, d]
  Tensor k_proj_, k_;           // likewise for k                              [B, S, Hkv, d]
  Tensor v_, v_gated_;          // x Wv^T; after the value gate (G2)           [B, S, Hkv, d]
  Tensor k_all_, v_all_;        // [k'; k], [v'; v]: the kernel's k, v         [B, K, Hkv, d]
  Tensor att_, wo_in_;          // kernel output; after the output gate (G1)    [B, S, H, d]
  Tensor probs_, lse_;          // [B, H, S, K] (or empty, see probs()), [B, H, S] f32
  Tensor unclipped_values_;     // clipped softmax's C (backend.h), [B, S, H, d] f32, or empty
  Tensor row_stats_;            // [B, H, S, kAttentionRowStatFields] f32
  bool capture_statistics_ = false;
  // Whether the last Forward passed the KV-bias key apart (Backend::AttentionForwardBiasApart):
  // its Backward then does too, and k_all_, v_all_ and their gradients go unused.
  bool bias_apart_ = false;
  // Backward scratch: the gradient of each cache above (aliased the same way).
  Tensor dq_proj_, dq_pre_, dq_;
  Tensor dk_proj_, dk_pre_, dk_, dk_all_;
  Tensor dv_, dv_gated_, dv_all_;
  Tensor d_att_, d_wo_in_;
  std::vector<Tensor> zeroed_grads_;  // the distinct gradient buffers Backward fills with 0
};

}  // namespace sinklab

#endif  // SINKLAB_LAYERS_ATTENTION_H_

// Model: Embedding -> [prefix sink tokens] -> N x Block -> RMSNorm -> LM head -> cross-entropy.
//
// Positions: with P = prefix_tokens the residual stream holds S = P + T positions per
// sequence (P learned prefix embeddings, then the T token embeddings); RoPE positions are
// 0..S-1; the prefix positions carry no loss, so Forward returns the mean over data tokens.
//
// Parameter order (fixed: checkpoints, optimizer state and Philox init streams depend on it):
//   0 embed [V, D]
//   prefix_embed [P, D]                                        (prefix_tokens > 0)
//   for each layer i:  layers.i.attn_norm [D], layers.i.attn.wq [H*d_h, D],
//                      layers.i.attn.wk [Hkv*d_h, D], layers.i.attn.wv [Hkv*d_h, D],
//                      layers.i.attn.wo [D, H*d_h],
//                      then the attention variants' parameters, in this order:
//                        layers.i.attn.q_norm [d_h], layers.i.attn.k_norm [d_h]  (qk_norm)
//                        layers.i.attn.sink_logit [H]                  (SINK_LOGIT)
//                        layers.i.attn.kv_bias_k [Hkv, d_h], .kv_bias_v  (kv_bias)
//                        layers.i.attn.w_gate [G, D]                   (gate)
//                      layers.i.ffn_norm [D],
//                      layers.i.ffn.w_gate [F, D], layers.i.ffn.w_up [F, D],
//                      layers.i.ffn.w_down [D, F]
//   final_norm [D]
//   lm_head [V, D] (absent when tie_embeddings)
#include "layers/model.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/rng.h"
#include "layers/block.h"
#include "layers/embedding.h"
#include "layers/lm_head.h"
#include "layers/loss.h"
#include "layers/make_parameter.h"
#include "layers/model_dims.h"
#include "layers/rmsnorm.h"
#include "layers/rope.h"
#include "layers/sink_tokens.h"

namespace sinklab {

struct Model::Impl {
  Impl(const ModelConfig& config, const ModelDims& dims, int64_t batch, int64_t seq_len,
       Backend* backend, Arena* arena)
      : backend(backend),
        prefix_count(config.prefix_tokens()),
        positions(config.prefix_tokens() + seq_len),
        rope(backend, arena, positions, dims.head_dim, config.rope_theta()),
        embed(backend, arena, dims.vocab, dims.d_model),
        final_norm(backend, arena, "final_norm", dims.d_model, batch * positions,
                   config.norm_eps()),
        head(backend, arena, dims.vocab, dims.d_model,
             config.tie_embeddings() ? embed.table() : nullptr),
        loss(backend, arena, batch * positions) {
    const DType act = backend->activation_dtype();
    const int64_t S = positions;
    if (prefix_count > 0) {
      prefix = std::make_unique<PrefixSinkTokens>(backend, arena, prefix_count, dims.d_model);
      token_embed = arena->Allocate(act, {batch, seq_len, dims.d_model});
      d_token_embed = arena->Allocate(act, {batch, seq_len, dims.d_model});
      stream_targets = arena->Allocate(DType::kI32, {batch, S});
      no_target = arena->Allocate(DType::kI32, {prefix_count});
      const std::vector<int32_t> minus_ones(prefix_count, -1);
      backend->CopyFromHost(no_target, minus_ones.data());
    }
    for (int i = 0; i < dims.n_layers; ++i) {
      blocks.push_back(std::make_unique<Block>(backend, arena, i, config, batch, S, &rope));
    }
    residual = arena->Allocate(act, {dims.n_layers + 1, batch, S, dims.d_model});
    for (Tensor* t : {&final_in, &d_final_in, &d_residual}) {
      *t = arena->Allocate(act, {batch, S, dims.d_model});
    }
    logits = arena->Allocate(act, {batch, S, dims.vocab});
    tokens = arena->Allocate(DType::kI32, {batch, seq_len});
    targets = arena->Allocate(DType::kI32, {batch, seq_len});
    if (prefix_count == 0) stream_targets = targets;
  }

  // The residual stream entering block l (l = n_layers: the final norm's input), [B, S, D].
  Tensor ResidualAt(int64_t l) const {
    const Tensor stream = residual.Slice0(l, l + 1);
    return stream.Reshaped({residual.dim(1), residual.dim(2), residual.dim(3)});
  }

  Backend* backend;
  int64_t prefix_count;  // P
  int64_t positions;     // S = P + T
  Rope rope;
  Embedding embed;
  std::unique_ptr<PrefixSinkTokens> prefix;  // when P > 0
  std::vector<std::unique_ptr<Block>> blocks;
  RmsNorm final_norm;
  LmHead head;
  CrossEntropyLoss loss;
  Tensor token_embed, d_token_embed;  // [B, T, D] token embeddings and gradient (P > 0)
  Tensor residual;                    // [L + 1, B, S, D]: embed output, then each block's
  Tensor final_in, d_final_in;        // RMSNorm(residual[L]) and its gradient [B, S, D]
  Tensor d_residual;                  // gradient of the residual stream (in place)
  bool capture_attention = false;     // set_capture_attention's
  Tensor logits;                      // [B, S, V]; Backward overwrites it with dlogits
  Tensor tokens, targets;             // [B, T] i32 copies of the last Forward's batch
  Tensor stream_targets;              // [B, S] i32: -1 on prefix positions, then targets
  Tensor no_target;                   // [P] i32 of -1
  std::unordered_set<const Parameter*> output_projections;
  std::unordered_map<const Parameter*, float> constant_init;  // sink logits
  bool backward_ready = false;  // a Forward ran since the last Backward
};

Model::Model(const ModelConfig& config, int batch, int seq_len, Backend* backend, Arena* arena)
    : config_(config), batch_(batch), seq_len_(seq_len) {
  SL_CHECK_MSG(batch > 0 && seq_len > 0, absl::StrCat("batch ", batch, " seq_len ", seq_len));
  const ModelDims dims = DimsOf(config);
  impl_ = std::make_unique<Impl>(config, dims, batch, seq_len, backend, arena);
  parameters_.push_back(impl_->embed.table());
  if (impl_->prefix) parameters_.push_back(impl_->prefix->embeddings());
  for (auto& block : impl_->blocks) {
    block_first_param_.push_back(parameters_.size());
    for (Parameter* p : block->parameters()) parameters_.push_back(p);
    for (Parameter* p : block->output_projections()) impl_->output_projections.insert(p);
    if (Parameter* sink = block->attention().sink_logit()) {
      impl_->constant_init[sink] = config.attention().sink_logit_init();
    }
  }
  final_norm_param_ = parameters_.size();
  parameters_.push_back(impl_->final_norm.weight());
  if (Parameter* head = impl_->head.own_weight()) parameters_.push_back(head);
}

Model::~Model() = default;

int64_t Model::NumParameters() const {
  int64_t count = 0;
  for (const Parameter* p : parameters_) count += p->master.numel();
  return count;
}

void Model::InitParameters(uint64_t seed) {
  const float std = config_.init_std();
  const float output_scale = 1.0f / std::sqrt(2.0f * static_cast<float>(config_.n_layers()));
  std::vector<float> host;
  for (size_t i = 0; i < parameters_.size(); ++i) {
    Parameter* p = parameters_[i];
    host.resize(p->master.numel());
    const auto constant = impl_->constant_init.find(p);
    if (constant != impl_->constant_init.end()) {
      std::fill(host.begin(), host.end(), constant->second);  // sink_logit_init
    } else if (p->kind == ParamKind::kNorm) {
      std::fill(host.begin(), host.end(), 1.0f);
    } else {
      const float scale = impl_->output_projections.count(p) ? output_scale : 1.0f;
      FillNormal(host.data(), p->master.numel(), 0.0f, std * scale, seed, i);
    }
    impl_->backend->CopyFromHost(p->master, host.data());
    RefreshCompute(impl_->backend, *p);
  }
}

float Model::Forward(const Tensor& tokens, const Tensor& targets) {
  ForwardToLogits(tokens, targets);
  impl_->backward_ready = true;
  return impl_->loss.Forward(impl_->logits, impl_->stream_targets);
}

void Model::Backward(float loss_scale, const GradsReadyFn& grads_ready) {
  Impl& m = *impl_;
  SL_CHECK_MSG(m.backward_ready, "Model::Backward needs a Forward first (one per Forward)");
  m.backward_ready = false;
  m.loss.Backward(m.logits, m.logits, m.stream_targets, loss_scale);  // in place
  BackwardFromLogits(grads_ready);
}

void Model::ForwardBackward(const Tensor& tokens, const Tensor& targets, float loss_scale,
                            const GradsReadyFn& grads_ready) {
  Impl& m = *impl_;
  m.backward_ready = false;
  const auto enqueue = [&] {
    ForwardToLogits(tokens, targets);
    m.loss.ForwardBackward(m.logits, m.logits, m.stream_targets, loss_scale);  // in place
    BackwardFromLogits(grads_ready);
  };
  // A hook runs host code between the kernels (data parallelism): no recording then.
  if (grads_ready) return enqueue();
  // Everything that changes the queued work is in the key (Backend::RunRecorded).
  uint32_t scale_bits = 0;
  std::memcpy(&scale_bits, &loss_scale, sizeof(scale_bits));
  m.backend->RunRecorded(
      absl::StrCat("Model::ForwardBackward ", reinterpret_cast<uintptr_t>(tokens.data()), " ",
                   reinterpret_cast<uintptr_t>(targets.data()), " ", scale_bits, " ",
                   m.capture_attention),
      enqueue);
}

void Model::WriteMeanLoss(const Tensor& out) {
  impl_->loss.WriteMeanLoss(out, impl_->stream_targets);
}

float Model::MeanLoss() { return impl_->loss.MeanLoss(impl_->stream_targets); }

void Model::ForwardToLogits(const Tensor& tokens, const Tensor& targets) {
  Impl& m = *impl_;
  SL_CHECK_MSG(tokens.numel() == int64_t{batch_} * seq_len_ && targets.numel() == tokens.numel(),
               absl::StrCat("Model built for [", batch_, ", ", seq_len_, "], got tokens ",
                            tokens.ShapeString(), " targets ", targets.ShapeString()));
  m.backend->Copy(m.tokens, tokens.Reshaped({batch_, seq_len_}));
  m.backend->Copy(m.targets, targets.Reshaped({batch_, seq_len_}));
  if (m.prefix) {
    m.embed.Forward(m.token_embed, m.tokens);
    m.prefix->Forward(m.ResidualAt(0), m.token_embed);
    m.backend->PrependRows(m.stream_targets, m.no_target, m.targets);
  } else {
    m.embed.Forward(m.ResidualAt(0), m.tokens);
  }
  for (size_t l = 0; l < m.blocks.size(); ++l) {
    m.blocks[l]->Forward(m.ResidualAt(l + 1), m.ResidualAt(l));
  }
  m.final_norm.Forward(m.final_in, m.ResidualAt(m.blocks.size()));
  m.head.Forward(m.logits, m.final_in);
}

void Model::BackwardFromLogits(const GradsReadyFn& grads_ready) {
  Impl& m = *impl_;
  const Tensor& dlogits = m.logits;
  m.head.Backward(m.d_final_in, dlogits, m.final_in);
  // The residual stream's gradient, one buffer updated in place by every block.
  const Tensor& d_residual = m.d_residual;
  m.final_norm.Backward(d_residual, m.d_final_in, m.ResidualAt(m.blocks.size()),
                        GradWrite::kAssign);
  // The head's weight may be the embedding table (tied), which is parameters_[0]: only the
  // final call covers it.
  const auto ready = [&grads_ready](size_t first_final) {
    if (grads_ready) grads_ready(first_final);
  };
  ready(final_norm_param_);
  for (size_t l = m.blocks.size(); l-- > 0;) {
    m.blocks[l]->Backward(d_residual, d_residual, m.ResidualAt(l));
    ready(block_first_param_[l]);
  }
  const Tensor& d_out = d_residual;
  if (m.prefix) {
    m.backend->Fill(m.d_token_embed, 0.0f);
    m.prefix->Backward(m.d_token_embed, d_out);
    m.embed.Backward(m.d_token_embed, m.tokens);
  } else {
    m.embed.Backward(d_out, m.tokens);
  }
  ready(0);
}

}  // namespace sinklab

namespace sinklab {

void Model::RefreshComputeCopies() {
  for (const Parameter* p : parameters_) RefreshCompute(impl_->backend, *p);
}

void Model::set_capture_attention(bool capture) {
  impl_->capture_attention = capture;
  for (auto& block : impl_->blocks) block->attention().set_capture_statistics(capture);
}

ModelCapture Model::Capture() const {
  ModelCapture capture;
  capture.prefix_tokens = static_cast<int>(impl_->prefix_count);
  const int64_t rows = static_cast<int64_t>(batch_) * impl_->positions;
  for (size_t l = 0; l < impl_->blocks.size(); ++l) {
    Block& block = *impl_->blocks[l];
    Attention& attention = block.attention();
    capture.bias_keys = static_cast<int>(attention.bias_keys());
    LayerCapture layer;
    layer.attention.row_stats = attention.row_stats();
    layer.attention.probs = attention.probs();
    layer.attention.lse = attention.lse();
    layer.attention.v = attention.v();
    layer.attention.gate = attention.gate_values();
    layer.output = impl_->ResidualAt(static_cast<int64_t>(l) + 1);
    const std::string prefix = absl::StrCat("layers.", l, ".");
    const Tensor hidden = block.ffn().hidden().Slice0(0, rows);
    layer.linear_inputs = {{prefix + "attn.wq", block.attention_input()},
                           {prefix + "attn.wk", block.attention_input()},
                           {prefix + "attn.wv", block.attention_input()},
                           {prefix + "attn.wo", attention.attention_output()}};
    if (attention.gate_weight() != nullptr) {
      layer.linear_inputs.push_back({prefix + "attn.w_gate", block.attention_input()});
    }
    layer.linear_inputs.push_back({prefix + "ffn.w_gate", block.ffn_input()});
    layer.linear_inputs.push_back({prefix + "ffn.w_up", block.ffn_input()});
    layer.linear_inputs.push_back({prefix + "ffn.w_down", hidden});
    capture.layers.push_back(std::move(layer));
  }
  capture.head_input = {"lm_head", impl_->final_in};
  capture.logits = impl_->logits;
  return capture;
}

}  // namespace sinklab

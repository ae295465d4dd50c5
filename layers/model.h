// Model: the Llama-style decoder, Embedding -> [prefix sink tokens] -> N x Block -> RMSNorm ->
// LM head -> CrossEntropy, with every sink mitigation of DESIGN.md section 5 that the config
// enables (layers/attention.h for those inside attention).
// Block: x + Attention(RMSNorm(x)); x + SwiGLU(RMSNorm(x)).
//
// Built for a fixed micro-batch shape [batch, seq_len]: every parameter, gradient and
// activation buffer is allocated from the arena at construction (nothing in the step).
// Backward accumulates into the parameter gradients (+=); the trainer zeroes them per step.
#ifndef SINKLAB_LAYERS_MODEL_H_
#define SINKLAB_LAYERS_MODEL_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "configs/sinklab.pb.h"
#include "core/arena.h"
#include "core/tensor.h"
#include "layers/backend.h"
#include "layers/capture.h"
#include "layers/parameter.h"

namespace sinklab {

class Model {
 public:
  Model(const ModelConfig& config, int batch, int seq_len, Backend* backend, Arena* arena);
  ~Model();

  // Normal(0, init_std) matrices, embeddings (incl. prefix_embed) and KV-bias vectors
  // (output projections scaled by 1/sqrt(2 n_layers)), norms = 1, sink logits =
  // attention.sink_logit_init. Deterministic: parameter i uses Philox stream (seed, i).
  void InitParameters(uint64_t seed);

  // tokens, targets: [batch, seq_len] int32 on the backend's device; target -1 = no loss.
  // The model prepends prefix_tokens positions internally (no loss on them).
  // Returns the mean cross-entropy over positions with target >= 0 (reads one scalar).
  float Forward(const Tensor& tokens, const Tensor& targets);
  // Called by Backward, on the host, after it has enqueued the last work that writes the
  // gradients of parameters()[first_final, end): after the LM head and final norm, after
  // each block, and with 0 at the end. first_final only decreases. Data-parallel training
  // starts reducing those gradients while the rest of the backward pass runs.
  using GradsReadyFn = std::function<void(size_t first_final)>;
  // Backward of (loss_scale * mean loss) of the last Forward; grads accumulate (+=).
  void Backward(float loss_scale, const GradsReadyFn& grads_ready = nullptr);
  // Forward then Backward (training): the loss and its gradient in one pass over the
  // logits, with no host read (WriteMeanLoss / MeanLoss give the loss afterwards).
  void ForwardBackward(const Tensor& tokens, const Tensor& targets, float loss_scale,
                       const GradsReadyFn& grads_ready = nullptr);
  // out [1] f32 on the backend's device = the last Forward(Backward)'s mean loss, left on the
  // device (the trainer reads a whole log interval's losses at once).
  void WriteMeanLoss(const Tensor& out);
  // The same, read to the host (synchronizes).
  float MeanLoss();

  // Views of the last Forward's activations for the statistics (layers/capture.h). The
  // attention row statistics in it are current only if that Forward ran with capture on.
  ModelCapture Capture() const;
  // While on, Forward writes every layer's attention row statistics [B, H, S, R]
  // (Backend::AttentionRowStats).
  void set_capture_attention(bool capture);
  // Rewrites every parameter's `compute` copy from its master (after masters were loaded;
  // a no-op where compute aliases master).
  void RefreshComputeCopies();

  const std::vector<Parameter*>& parameters() const { return parameters_; }
  int64_t NumParameters() const;
  const ModelConfig& config() const { return config_; }
  int batch() const { return batch_; }
  int seq_len() const { return seq_len_; }  // T (data tokens; positions S = P + T)

 private:
  struct Impl;
  // Forward up to the logits (no loss); Backward from dlogits (in the logits buffer) down.
  void ForwardToLogits(const Tensor& tokens, const Tensor& targets);
  void BackwardFromLogits(const GradsReadyFn& grads_ready);
  ModelConfig config_;
  int batch_, seq_len_;
  std::vector<Parameter*> parameters_;
  std::vector<size_t> block_first_param_;  // index in parameters_ of each block's first
  size_t final_norm_param_ = 0;            // index in parameters_ of the final norm's gain
  std::unique_ptr<Impl> impl_;
};

}  // namespace sinklab

#endif  // SINKLAB_LAYERS_MODEL_H_

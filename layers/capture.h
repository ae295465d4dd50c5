// ModelCapture: read-only views of a Model's activations after a Forward, for the sink and
// outlier statistics (DESIGN.md section 6). Views into the model's own buffers (no copy):
// valid until the next Forward; on a GPU backend they live on the device.
//
// Positions: the residual stream has S = P + T positions per sequence, P prefix sink tokens
// (model.prefix_tokens) first, then the T data tokens. Keys: K = bias_keys + S, where
// bias_keys = 1 with attention.kv_bias (key 0 is the learned bias key k') else 0; key
// bias_keys + s is position s.
#ifndef SINKLAB_LAYERS_CAPTURE_H_
#define SINKLAB_LAYERS_CAPTURE_H_

#include <string>
#include <vector>

#include "core/tensor.h"

namespace sinklab {

struct NamedTensor {
  std::string name;
  Tensor tensor;
};

struct AttentionCapture {
  // [B, H, S, kAttentionRowStatFields] f32 per-query-row statistics of the weights
  // (Backend::AttentionRowStats, layers/backend.h AttentionRowStat); what StatsRunner reads.
  Tensor row_stats;
  // [B, H, S, K] f32 attention weights p_tk (0 for future keys), only on a backend whose
  // attention backward reads them (the CPU reference); empty on the GPU.
  Tensor probs;
  Tensor lse;    // [B, H, S] f32 log of each row's normalizer (variant-specific)
  Tensor v;      // [B, S, Hkv, d_h] values of the S positions (before any value gate)
  Tensor gate;   // [B, S, G] gate values sigmoid(X W_g); empty without a gate
};

struct LayerCapture {
  AttentionCapture attention;
  Tensor output;  // h^l: the residual stream after block l, [B, S, D]
  // The input of every linear layer of the block, named by its parameter
  // ("layers.3.attn.wq", ...); layers sharing an input appear once each, with that input.
  std::vector<NamedTensor> linear_inputs;
};

struct ModelCapture {
  int prefix_tokens = 0;  // P
  int bias_keys = 0;      // 0 or 1
  std::vector<LayerCapture> layers;
  NamedTensor head_input;  // {"lm_head", final RMSNorm output [B, S, D]}
  Tensor logits;           // [B, S, V] LM-head outputs (Backward overwrites them in place)
};

}  // namespace sinklab

#endif  // SINKLAB_LAYERS_CAPTURE_H_

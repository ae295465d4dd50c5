// ModelDims: the integer shape of a model, resolved from ModelConfig once (n_kv_heads 0 ->
// n_heads, head_dim = d_model / n_heads), so layers do not re-derive it.
#ifndef SINKLAB_LAYERS_MODEL_DIMS_H_
#define SINKLAB_LAYERS_MODEL_DIMS_H_

#include <cstdint>

#include "absl/status/status.h"
#include "configs/sinklab.pb.h"
#include "layers/backend.h"

namespace sinklab {

struct ModelDims {
  int64_t vocab = 0;
  int64_t d_model = 0;     // D
  int64_t n_layers = 0;    // L
  int64_t n_heads = 0;     // H
  int64_t n_kv_heads = 0;  // Hkv, divides H
  int64_t head_dim = 0;    // d_h = D / H, even
  int64_t ffn_hidden = 0;  // F
};

// OK when layers/ can build the model: positive sizes, n_heads divides d_model, even
// head_dim, n_kv_heads divides n_heads, prefix_tokens >= 0, and the parameters of the
// chosen normalizer in range (InvalidArgument otherwise; the message names the field and
// the values). Every mitigation is implemented and they all combine.
absl::Status CheckModelConfig(const ModelConfig& config);
// The resolved dims; CHECK-fails when CheckModelConfig would fail (validate configs first).
ModelDims DimsOf(const ModelConfig& config);
// The attention kernel options: the config's normalizer and its parameters, scale
// 1/sqrt(head_dim), and the sigmoid bias resolved: sigmoid_bias when set, else -ln(num_keys)
// with num_keys the keys of the full sequence (seq_len + prefix_tokens (+1 with kv_bias)).
AttentionSpec AttentionSpecOf(const AttentionConfig& config, int64_t head_dim,
                              int64_t num_keys);

}  // namespace sinklab

#endif  // SINKLAB_LAYERS_MODEL_DIMS_H_

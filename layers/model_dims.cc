#include "layers/model_dims.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "core/status.h"

namespace sinklab {

absl::Status CheckModelConfig(const ModelConfig& config) {
  auto invalid = [](const std::string& what) {
    return absl::InvalidArgumentError(absl::StrCat("model: ", what));
  };
  auto positive = [&](const char* field, int64_t value) -> absl::Status {
    if (value > 0) return absl::OkStatus();
    return invalid(absl::StrCat(field, "=", value, " must be > 0"));
  };
  SL_RETURN_IF_ERROR(positive("vocab_size", config.vocab_size()));
  SL_RETURN_IF_ERROR(positive("d_model", config.d_model()));
  SL_RETURN_IF_ERROR(positive("n_layers", config.n_layers()));
  SL_RETURN_IF_ERROR(positive("ffn_hidden", config.ffn_hidden()));
  if (config.n_heads() <= 0 || config.d_model() % config.n_heads() != 0) {
    return invalid(absl::StrCat("n_heads=", config.n_heads(), " does not divide d_model=",
                                config.d_model()));
  }
  if ((config.d_model() / config.n_heads()) % 2 != 0) {
    return invalid(absl::StrCat("head dim d_model/n_heads=", config.d_model() / config.n_heads(),
                                " must be even for RoPE"));
  }
  const int kv = config.n_kv_heads() == 0 ? config.n_heads() : config.n_kv_heads();
  if (kv <= 0 || config.n_heads() % kv != 0) {
    return invalid(absl::StrCat("n_kv_heads=", config.n_kv_heads(), " does not divide n_heads=",
                                config.n_heads()));
  }
  if (!(config.norm_eps() > 0)) {
    return invalid(absl::StrCat("norm_eps=", config.norm_eps(), " must be > 0"));
  }
  // Schema fields whose layers are not built yet: refuse them rather than silently train
  // the baseline.
  const AttentionConfig& attention = config.attention();
  auto unimplemented = [](const std::string& what) {
    return absl::UnimplementedError(
        absl::StrCat("model: ", what, " is not implemented yet by layers/ (only the softmax "
                                      "baseline is)"));
  };
  if (attention.normalizer() != AttentionConfig::SOFTMAX) {
    return unimplemented(absl::StrCat("attention.normalizer=",
                                      AttentionConfig::Normalizer_Name(attention.normalizer())));
  }
  if (attention.kv_bias()) return unimplemented("attention.kv_bias");
  if (attention.qk_norm()) return unimplemented("attention.qk_norm");
  if (attention.gate().position() != GateConfig::NONE) return unimplemented("attention.gate");
  if (config.prefix_tokens() != 0) return unimplemented("prefix_tokens");
  return absl::OkStatus();
}

ModelDims DimsOf(const ModelConfig& config) {
  SL_CHECK_OK(CheckModelConfig(config));
  ModelDims dims;
  dims.vocab = config.vocab_size();
  dims.d_model = config.d_model();
  dims.n_layers = config.n_layers();
  dims.n_heads = config.n_heads();
  dims.n_kv_heads = config.n_kv_heads() == 0 ? config.n_heads() : config.n_kv_heads();
  dims.head_dim = config.d_model() / config.n_heads();
  dims.ffn_hidden = config.ffn_hidden();
  return dims;
}

AttentionSpec AttentionSpecOf(const AttentionConfig& config, int64_t head_dim) {
  SL_CHECK_MSG(config.normalizer() == AttentionConfig::SOFTMAX,
               absl::StrCat("attention normalizer ",
                            AttentionConfig::Normalizer_Name(config.normalizer()),
                            " is not implemented (CheckModelConfig rejects it)"));
  AttentionSpec spec;
  spec.normalizer = AttentionNormalizer::kSoftmax;
  spec.scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  return spec;
}

}  // namespace sinklab

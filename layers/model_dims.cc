#include "layers/model_dims.h"

#include <algorithm>
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
  // Every mitigation is built and they all combine (DESIGN.md section 5); only their own
  // parameters' ranges are checked here (configs/validate.cc also refuses settings that
  // have no effect, with file:line:col).
  const AttentionConfig& attention = config.attention();
  if (config.prefix_tokens() < 0) {
    return invalid(absl::StrCat("prefix_tokens=", config.prefix_tokens(), " must be >= 0"));
  }
  if (attention.normalizer() == AttentionConfig::SOFTPICK && !(attention.softpick_eps() > 0)) {
    return invalid(absl::StrCat("attention.softpick_eps=", attention.softpick_eps(),
                                " must be > 0"));
  }
  if (attention.normalizer() == AttentionConfig::CLIPPED_SOFTMAX &&
      !(attention.clip_gamma() <= 0 && attention.clip_zeta() >= 1)) {
    return invalid(absl::StrCat("attention.clip_gamma=", attention.clip_gamma(),
                                " must be <= 0 and attention.clip_zeta=", attention.clip_zeta(),
                                " >= 1"));
  }
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

AttentionSpec AttentionSpecOf(const AttentionConfig& config, int64_t head_dim,
                              int64_t num_keys) {
  AttentionSpec spec;
  switch (config.normalizer()) {
    case AttentionConfig::SOFTMAX:
      spec.normalizer = AttentionNormalizer::kSoftmax;
      break;
    case AttentionConfig::SOFTMAX1:
      spec.normalizer = AttentionNormalizer::kSoftmax1;
      break;
    case AttentionConfig::SINK_LOGIT:
      spec.normalizer = AttentionNormalizer::kSinkLogit;
      break;
    case AttentionConfig::SOFTPICK:
      spec.normalizer = AttentionNormalizer::kSoftpick;
      break;
    case AttentionConfig::SIGMOID:
      spec.normalizer = AttentionNormalizer::kSigmoid;
      break;
    case AttentionConfig::CLIPPED_SOFTMAX:
      spec.normalizer = AttentionNormalizer::kClippedSoftmax;
      break;
  }
  spec.scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  spec.softpick_eps = config.softpick_eps();
  spec.allow_library_kernel = config.kernel() == AttentionConfig::AUTO;
  // Ramapuram et al. 2024 (section 3.1): b = -ln(n), n the sequence length (keys).
  spec.sigmoid_bias = config.has_sigmoid_bias()
                          ? config.sigmoid_bias()
                          : -std::log(static_cast<float>(std::max<int64_t>(num_keys, 1)));
  spec.clip_gamma = config.clip_gamma();
  spec.clip_zeta = config.clip_zeta();
  return spec;
}

}  // namespace sinklab

#include "launch/export.h"

#include <cstring>
#include <map>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "configs/config_util.h"
#include "configs/config_writer.h"
#include "core/file_util.h"
#include "core/metrics_jsonl.h"
#include "core/safetensors.h"
#include "launch/checkpoint.h"

namespace sinklab {
namespace {

constexpr char kParamPrefix[] = "param.";

// Our per-layer names -> HF LlamaDecoderLayer submodules.
const std::map<std::string, std::string>& LayerNameMap() {
  static const auto* map = new std::map<std::string, std::string>{
      {"attn_norm", "input_layernorm"},   {"ffn_norm", "post_attention_layernorm"},
      {"attn.wq", "self_attn.q_proj"},    {"attn.wk", "self_attn.k_proj"},
      {"attn.wv", "self_attn.v_proj"},    {"attn.wo", "self_attn.o_proj"},
      {"ffn.w_gate", "mlp.gate_proj"},    {"ffn.w_up", "mlp.up_proj"},
      {"ffn.w_down", "mlp.down_proj"}};
  return *map;
}

// The tensors to write: name, shape and data (converted to the output dtype).
struct OutTensor {
  std::string name;
  std::vector<int64_t> shape;
  std::vector<char> bytes;
};

OutTensor Convert(const std::string& name, const SafetensorsEntry& entry, DType dtype) {
  OutTensor out{name, entry.shape, {}};
  const size_t n = entry.nbytes / sizeof(float);
  const float* src = static_cast<const float*>(entry.data);
  out.bytes.resize(n * DTypeSize(dtype));
  if (dtype == DType::kF32) {
    std::memcpy(out.bytes.data(), src, entry.nbytes);
  } else {
    BF16* dst = reinterpret_cast<BF16*>(out.bytes.data());
    for (size_t i = 0; i < n; ++i) dst[i] = FloatToBF16(src[i]);
  }
  return out;
}

}  // namespace

std::string HuggingFaceName(const std::string& name) {
  if (name == "embed") return "model.embed_tokens.weight";
  if (name == "final_norm") return "model.norm.weight";
  if (name == "lm_head") return "lm_head.weight";
  // layers.<i>.<rest>
  const std::vector<std::string> parts = absl::StrSplit(name, absl::MaxSplits('.', 2));
  if (parts.size() == 3 && parts[0] == "layers") {
    const auto it = LayerNameMap().find(parts[2]);
    if (it != LayerNameMap().end()) {
      return absl::StrCat("model.layers.", parts[1], ".", it->second, ".weight");
    }
  }
  return "";
}

absl::Status CheckLlamaExpressible(const ModelConfig& model) {
  const AttentionConfig& attention = model.attention();
  const char* why = nullptr;
  if (attention.normalizer() != AttentionConfig::SOFTMAX) {
    why = "model.attention.normalizer (Llama uses plain softmax)";
  } else if (attention.kv_bias()) {
    why = "model.attention.kv_bias";
  } else if (attention.gate().position() != GateConfig::NONE) {
    why = "model.attention.gate";
  } else if (attention.qk_norm()) {
    why = "model.attention.qk_norm";
  } else if (model.prefix_tokens() > 0) {
    why = "model.prefix_tokens";
  }
  if (why == nullptr) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      "export --format hf: Hugging Face Llama cannot express ", why,
      "; use --format native"));
}

std::string HuggingFaceConfigJson(const Config& config, const std::string& dtype) {
  const ModelConfig& m = config.model();
  JsonRecord json;
  json.AddString("model_type", "llama");
  json.Add("vocab_size", int64_t{m.vocab_size()});
  json.Add("hidden_size", int64_t{m.d_model()});
  json.Add("intermediate_size", int64_t{m.ffn_hidden()});
  json.Add("num_hidden_layers", int64_t{m.n_layers()});
  json.Add("num_attention_heads", int64_t{m.n_heads()});
  json.Add("num_key_value_heads", int64_t{KvHeads(m)});
  json.Add("head_dim", int64_t{HeadDim(m)});
  json.AddString("hidden_act", "silu");
  json.Add("max_position_embeddings", int64_t{config.data().seq_len()});
  json.Add("rms_norm_eps", static_cast<double>(m.norm_eps()));
  json.Add("rope_theta", static_cast<double>(m.rope_theta()));
  json.Add("initializer_range", static_cast<double>(m.init_std()));
  json.AddString("torch_dtype", dtype == "bf16" ? "bfloat16" : "float32");
  std::string text = json.ToJson();
  // JSON literals JsonRecord does not write.
  text.pop_back();
  absl::StrAppend(&text, ", \"architectures\": [\"LlamaForCausalLM\"]",
                  ", \"tie_word_embeddings\": ", m.tie_embeddings() ? "true" : "false",
                  ", \"attention_bias\": false, \"mlp_bias\": false, \"use_cache\": true}\n");
  return text;
}

absl::Status ExportCheckpoint(const ExportOptions& options) {
  if (options.format != "hf" && options.format != "native") {
    return absl::InvalidArgumentError(
        absl::StrCat("--format: expected hf or native, got '", options.format, "'"));
  }
  if (options.dtype != "bf16" && options.dtype != "f32") {
    return absl::InvalidArgumentError(
        absl::StrCat("--dtype: expected bf16 or f32, got '", options.dtype, "'"));
  }
  if (options.out_dir.empty()) return absl::InvalidArgumentError("export: --out is required");
  SL_ASSIGN_OR_RETURN(const Config config, ReadCheckpointConfig(options.checkpoint, {}));
  if (options.format == "hf") SL_RETURN_IF_ERROR(CheckLlamaExpressible(config.model()));
  SL_ASSIGN_OR_RETURN(const SafetensorsFile file,
                      SafetensorsFile::Read(options.checkpoint + "/state.safetensors"));
  const DType dtype = options.dtype == "bf16" ? DType::kBF16 : DType::kF32;
  std::vector<OutTensor> tensors;
  for (const std::string& stored : file.names()) {
    if (!absl::StartsWith(stored, kParamPrefix)) continue;  // optimizer state
    const std::string name = stored.substr(std::strlen(kParamPrefix));
    SL_ASSIGN_OR_RETURN(const SafetensorsEntry entry, file.Get(stored));
    if (entry.dtype != DType::kF32) {
      return absl::InvalidArgumentError(absl::StrCat(file.name(), ": '", stored, "' is not F32"));
    }
    const std::string out_name = options.format == "hf" ? HuggingFaceName(name) : name;
    if (out_name.empty()) {
      return absl::FailedPreconditionError(
          absl::StrCat("export --format hf: no Llama tensor for parameter '", name, "'"));
    }
    tensors.push_back(Convert(out_name, entry, dtype));
  }
  std::vector<SafetensorsEntry> entries;
  for (const OutTensor& t : tensors) {
    entries.push_back({t.name, dtype, t.shape, t.bytes.data(), t.bytes.size()});
  }
  SL_RETURN_IF_ERROR(MakeDirs(options.out_dir));
  if (options.format == "hf") {
    // transformers refuses safetensors files whose metadata "format" is not "pt".
    SL_RETURN_IF_ERROR(
        WriteSafetensors(options.out_dir + "/model.safetensors", entries, {{"format", "pt"}}));
    return WriteFileAtomically(options.out_dir + "/config.json",
                               HuggingFaceConfigJson(config, options.dtype));
  }
  return WriteSafetensors(options.out_dir + "/model.safetensors", entries,
                          {{"format", "sinklab-native"}, {"config", ConfigToText(config)}});
}

}  // namespace sinklab

// sinklab export: a training checkpoint -> a model folder other tools load.
//   hf:     model.safetensors with Hugging Face Llama tensor names (LlamaForCausalLM) and
//           config.json, for the configurations Llama can express (no mitigation switches);
//   native: model.safetensors with our parameter names and our resolved config in
//           __metadata__["config"] (always works; `sinklab eval --weights` reads it).
#ifndef SINKLAB_LAUNCH_EXPORT_H_
#define SINKLAB_LAUNCH_EXPORT_H_

#include <string>

#include "absl/status/status.h"
#include "configs/sinklab.pb.h"

namespace sinklab {

struct ExportOptions {
  std::string checkpoint;  // a ckpt_<step>/ directory
  std::string format = "hf";
  std::string out_dir;
  std::string dtype = "bf16";  // bf16 or f32
};

absl::Status ExportCheckpoint(const ExportOptions& options);

// OK when Llama can express `model`; otherwise FailedPrecondition naming the switch.
absl::Status CheckLlamaExpressible(const ModelConfig& model);

// "layers.3.attn.wq" -> "model.layers.3.self_attn.q_proj.weight" (HF LlamaForCausalLM).
std::string HuggingFaceName(const std::string& name);

// The config.json of HF's LlamaConfig for `config` (torch_dtype from `dtype`).
std::string HuggingFaceConfigJson(const Config& config, const std::string& dtype);

}  // namespace sinklab

#endif  // SINKLAB_LAUNCH_EXPORT_H_

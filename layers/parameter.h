// Parameter: one learned tensor with its gradient. Layers own their Parameters; the model
// lists them for the optimizer, checkpoints and export.
#ifndef SINKLAB_LAYERS_PARAMETER_H_
#define SINKLAB_LAYERS_PARAMETER_H_

#include <string>

#include "core/tensor.h"

namespace sinklab {

// What a parameter is, which decides its optimizer group and weight decay.
enum class ParamKind {
  kMatrix,     // hidden 2-D weights (attention and FFN projections): decayed; Muon-eligible
  kEmbedding,  // token embedding table [vocab, D]
  kHead,       // LM head [vocab, D] (absent when tied)
  kNorm,       // RMSNorm gains [D]
  kBias,       // additive vectors
};

struct Parameter {
  std::string name;  // Hugging Face-like dotted name, e.g. "layers.3.attn.wq"
  ParamKind kind = ParamKind::kMatrix;
  Tensor master;     // fp32 master weights (what the optimizer updates and checkpoints store)
  Tensor grad;       // fp32, same shape; Backward accumulates into it (+=)
  Tensor compute;    // what kernels read: aliases `master` on the CPU, a bf16 copy on CUDA
};

}  // namespace sinklab

#endif  // SINKLAB_LAYERS_PARAMETER_H_

// Parameter groups: which optimizer updates each Parameter and with what weight decay.
//
// Weight decay follows the usual GPT/Llama recipe (e.g. nanoGPT `configure_optimizers`): 2-D
// weight matrices decay, 1-D vectors (norm gains, biases) and the embedding table do not,
// unless OptimConfig's decay_norms / decay_biases / decay_embeddings ask for it. The LM head
// is a [vocab, D] matrix and decays like the hidden matrices (as in nanoGPT, where every 2-D
// tensor decays); when the head is tied to the embedding it is absent and the shared table
// follows decay_embeddings.
#ifndef SINKLAB_OPTIM_PARAM_GROUPS_H_
#define SINKLAB_OPTIM_PARAM_GROUPS_H_

#include <string>
#include <vector>

#include "configs/sinklab.pb.h"
#include "layers/parameter.h"

namespace sinklab {

// Which update rule a group uses (Muon for hidden matrices comes with optim/muon.h).
enum class OptimizerKind { kAdamW };

// "adamw".
const char* OptimizerKindName(OptimizerKind kind);

struct ParamGroup {
  OptimizerKind optimizer = OptimizerKind::kAdamW;
  float weight_decay = 0.0f;       // decoupled decay coefficient (0 for the no-decay group)
  std::vector<Parameter*> params;  // in the order they were given
};

// True when parameters of this kind get weight decay under `config` (see the file comment).
bool DecaysWeight(ParamKind kind, const OptimConfig& config);

// config.weight_decay() for kinds that decay, else 0.
float WeightDecayFor(ParamKind kind, const OptimConfig& config);

// Splits `params` into an AdamW decay group (weight_decay = config.weight_decay()) followed by
// an AdamW no-decay group (weight_decay = 0), each keeping the input order; empty groups are
// left out.
std::vector<ParamGroup> AssignParamGroups(const std::vector<Parameter*>& params,
                                          const OptimConfig& config);

// Text lines for the trainer to print at start, one group after the other:
//   "adamw decay=0.1 (2 tensors, 32768 values): layers.0.attn.wq [128, 128], lm_head [..]"
// A group whose list is longer than `line_width` characters continues on following lines
// indented by four spaces (a single entry longer than the width gets a line of its own).
std::vector<std::string> DescribeParamGroups(const std::vector<ParamGroup>& groups,
                                             int line_width = 100);

}  // namespace sinklab

#endif  // SINKLAB_OPTIM_PARAM_GROUPS_H_

// Parameter groups: which update rule (AdamW or Muon) updates each Parameter, with what peak
// learning rate and weight decay.
//
// Routing: with optim.matrix_optimizer = MUON the hidden matrices (ParamKind::kMatrix) go to
// Muon, everything else (embeddings, LM head, norms, biases, sink/gate vectors) to AdamW; with
// ADAMW (the default) everything goes to AdamW. Then optim.param_override entries, globs on
// the names (`*` matches any run of characters, dots included; the whole name must match),
// can move a parameter either way; when several match, the last one wins, wholly (its
// optimizer, and its weight_decay if set). Muon takes 2-D parameters only: sending another
// shape there is refused with an error naming the override.
//
// Learning rates: every AdamW group has optim.lr; every Muon group MuonLearningRate(config):
// optim.muon.lr when set, else 0.02 with ORIGINAL scaling (muon.py's default) or optim.lr
// with MOONSHOT scaling (which is built to share AdamW's lr, Liu et al. 2025).
//
// Weight decay follows the usual GPT/Llama recipe (e.g. nanoGPT `configure_optimizers`): 2-D
// weight matrices decay, 1-D vectors (norm gains, biases) and the embedding table do not,
// unless OptimConfig's decay_norms / decay_biases / decay_embeddings ask for it. The LM head
// is a [vocab, D] matrix and decays like the hidden matrices (as in nanoGPT, where every 2-D
// tensor decays); when the head is tied to the embedding it is absent and the shared table
// follows decay_embeddings. Muon parameters decay by MuonWeightDecay(config): optim.muon.
// weight_decay when set, else optim.weight_decay. An override's weight_decay replaces both.
#ifndef SINKLAB_OPTIM_PARAM_GROUPS_H_
#define SINKLAB_OPTIM_PARAM_GROUPS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "configs/sinklab.pb.h"
#include "layers/parameter.h"

namespace sinklab {

// "adamw" or "muon" (the proto's UpdateRule, lower case).
const char* UpdateRuleName(UpdateRule rule);

struct ParamGroup {
  UpdateRule optimizer = ADAMW;
  // "<rule>_decay<weight_decay>", e.g. "adamw_decay0.1", "adamw_decay0", "muon_decay0.1":
  // unique per group; statistics are keyed by it.
  std::string name;
  float lr = 0.0f;                 // peak learning rate (the schedule multiplies it)
  float weight_decay = 0.0f;       // decoupled decay coefficient
  std::vector<Parameter*> params;  // in the order they were given
};

// True when parameters of this kind get weight decay under `config` (see the file comment).
bool DecaysWeight(ParamKind kind, const OptimConfig& config);

// config.weight_decay() for kinds that decay, else 0 (AdamW's rule).
float WeightDecayFor(ParamKind kind, const OptimConfig& config);

// Muon's peak lr and decay (see the file comment).
float MuonLearningRate(const OptimConfig& config);
float MuonWeightDecay(const OptimConfig& config);

// True when `name` matches `pattern`, where '*' matches any run of characters (also empty)
// and every other character itself; the whole name must match.
bool GlobMatch(absl::string_view pattern, absl::string_view name);

// Routes `params` as the file comment says and groups them by (rule, decay): AdamW groups
// first, then Muon groups, each by decreasing decay, each keeping the input order; empty
// groups are left out. InvalidArgument when Muon would get a parameter that is not 2-D (the
// message names the parameter, its shape and the override responsible). An override that
// matches no parameter is logged as a warning (the model may lack that variant's weights).
absl::StatusOr<std::vector<ParamGroup>> RouteParamGroups(const std::vector<Parameter*>& params,
                                                          const OptimConfig& config);

// Text lines for the trainer to print at start, one group after the other:
//   "adamw lr=0.003 decay=0.1 (2 tensors, 32768 values): layers.0.attn.wq [128, 128], .."
// A group whose list is longer than `line_width` characters continues on following lines
// indented by four spaces (a single entry longer than the width gets a line of its own).
std::vector<std::string> DescribeParamGroups(const std::vector<ParamGroup>& groups,
                                             int line_width = 100);

}  // namespace sinklab

#endif  // SINKLAB_OPTIM_PARAM_GROUPS_H_

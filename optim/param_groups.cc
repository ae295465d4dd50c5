#include "optim/param_groups.h"

#include <cstdint>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/status.h"

namespace sinklab {

const char* OptimizerKindName(OptimizerKind kind) {
  switch (kind) {
    case OptimizerKind::kAdamW: return "adamw";
  }
  return "?";
}

bool DecaysWeight(ParamKind kind, const OptimConfig& config) {
  switch (kind) {
    case ParamKind::kMatrix: return true;
    // The LM head is a matrix in the literature (nanoGPT decays every 2-D tensor): decayed
    // like the hidden matrices.
    case ParamKind::kHead: return true;
    case ParamKind::kEmbedding: return config.decay_embeddings();
    case ParamKind::kNorm: return config.decay_norms();
    case ParamKind::kBias: return config.decay_biases();
  }
  SL_CHECK_MSG(false, absl::StrCat("unknown ParamKind ", static_cast<int>(kind)));
  return false;
}

float WeightDecayFor(ParamKind kind, const OptimConfig& config) {
  return DecaysWeight(kind, config) ? config.weight_decay() : 0.0f;
}

std::vector<ParamGroup> AssignParamGroups(const std::vector<Parameter*>& params,
                                          const OptimConfig& config) {
  ParamGroup decay{OptimizerKind::kAdamW, config.weight_decay(), {}};
  ParamGroup no_decay{OptimizerKind::kAdamW, 0.0f, {}};
  for (Parameter* param : params) {
    SL_CHECK(param != nullptr);
    (DecaysWeight(param->kind, config) ? decay : no_decay).params.push_back(param);
  }
  std::vector<ParamGroup> groups;
  if (!decay.params.empty()) groups.push_back(std::move(decay));
  if (!no_decay.params.empty()) groups.push_back(std::move(no_decay));
  return groups;
}

std::vector<std::string> DescribeParamGroups(const std::vector<ParamGroup>& groups,
                                             int line_width) {
  std::vector<std::string> lines;
  for (const ParamGroup& group : groups) {
    int64_t values = 0;
    for (const Parameter* param : group.params) values += param->master.numel();
    std::string line =
        absl::StrFormat("%s decay=%g (%d tensors, %d values):", OptimizerKindName(group.optimizer),
                        group.weight_decay, group.params.size(), values);
    bool can_wrap = true;  // false on a continuation line that holds no entry yet
    for (size_t i = 0; i < group.params.size(); ++i) {
      const Parameter& param = *group.params[i];
      std::string entry = absl::StrCat(param.name, " ", param.master.ShapeString());
      if (i + 1 < group.params.size()) entry += ",";
      // +1 for the space before the entry.
      if (can_wrap && static_cast<int>(line.size() + 1 + entry.size()) > line_width) {
        lines.push_back(std::move(line));
        line = "   ";  // plus the separating space below: four spaces of indent
        can_wrap = false;
      }
      absl::StrAppend(&line, " ", entry);
      can_wrap = true;
    }
    lines.push_back(std::move(line));
  }
  return lines;
}

}  // namespace sinklab

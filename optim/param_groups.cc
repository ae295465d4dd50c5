#include "optim/param_groups.h"

#include <algorithm>
#include <cstdint>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/log.h"
#include "core/status.h"

namespace sinklab {
namespace {

// muon.py's default lr, tuned for the ORIGINAL scaling.
constexpr float kMuonOriginalDefaultLr = 0.02f;

// Where one parameter goes.
struct Route {
  UpdateRule rule = ADAMW;
  float weight_decay = 0.0f;
};

}  // namespace

const char* UpdateRuleName(UpdateRule rule) {
  switch (rule) {
    case ADAMW: return "adamw";
    case MUON: return "muon";
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

float MuonLearningRate(const OptimConfig& config) {
  if (config.muon().has_lr()) return config.muon().lr();
  return config.muon().scaling() == MuonConfig::MOONSHOT ? config.lr() : kMuonOriginalDefaultLr;
}

float MuonWeightDecay(const OptimConfig& config) {
  return config.muon().has_weight_decay() ? config.muon().weight_decay()
                                          : config.weight_decay();
}

bool GlobMatch(absl::string_view pattern, absl::string_view name) {
  // Greedy matching with backtracking to the last '*' (linear for one star, at most
  // |pattern| * |name| steps in general).
  size_t p = 0, n = 0;
  size_t star = absl::string_view::npos, star_name = 0;
  while (n < name.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      star_name = n;
    } else if (p < pattern.size() && pattern[p] == name[n]) {
      ++p;
      ++n;
    } else if (star != absl::string_view::npos) {
      p = star + 1;
      n = ++star_name;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

absl::StatusOr<std::vector<ParamGroup>> RouteParamGroups(const std::vector<Parameter*>& params,
                                                          const OptimConfig& config) {
  std::vector<bool> override_used(config.param_override_size(), false);
  std::vector<ParamGroup> groups;
  for (Parameter* param : params) {
    SL_CHECK(param != nullptr);
    Route route;
    route.rule = param->kind == ParamKind::kMatrix ? config.matrix_optimizer() : ADAMW;
    int winner = -1;  // the last matching override
    for (int i = 0; i < config.param_override_size(); ++i) {
      if (GlobMatch(config.param_override(i).name(), param->name)) winner = i;
    }
    bool decay_set = false;
    if (winner >= 0) {
      const ParamOverride& entry = config.param_override(winner);
      override_used[winner] = true;
      route.rule = entry.optimizer();
      if (entry.has_weight_decay()) {
        route.weight_decay = entry.weight_decay();
        decay_set = true;
      }
    }
    if (!decay_set) {
      route.weight_decay =
          route.rule == MUON ? MuonWeightDecay(config) : WeightDecayFor(param->kind, config);
    }
    if (route.rule == MUON && param->master.rank() != 2) {
      const std::string cause =
          winner >= 0 ? absl::StrCat("optim.param_override[", winner, "] (name: \"",
                                     config.param_override(winner).name(), "\")")
                      : std::string("optim.matrix_optimizer=MUON");
      return absl::InvalidArgumentError(absl::StrCat(
          cause, " sends parameter '", param->name, "' ", param->master.ShapeString(),
          " to Muon, which updates 2-D matrices only; send it to ADAMW with a "
          "param_override"));
    }
    auto group = std::find_if(groups.begin(), groups.end(), [&](const ParamGroup& g) {
      return g.optimizer == route.rule && g.weight_decay == route.weight_decay;
    });
    if (group == groups.end()) {
      ParamGroup fresh;
      fresh.optimizer = route.rule;
      fresh.name = absl::StrCat(UpdateRuleName(route.rule), "_decay", route.weight_decay);
      fresh.lr = route.rule == MUON ? MuonLearningRate(config) : config.lr();
      fresh.weight_decay = route.weight_decay;
      groups.push_back(std::move(fresh));
      group = groups.end() - 1;
    }
    group->params.push_back(param);
  }
  for (int i = 0; i < config.param_override_size(); ++i) {
    if (!override_used[i]) {
      LogWarning(absl::StrCat("optim.param_override[", i, "] (name: \"",
                              config.param_override(i).name(), "\") matches no parameter"));
    }
  }
  // AdamW before Muon, then by decreasing decay (stable: ties keep first appearance).
  std::stable_sort(groups.begin(), groups.end(), [](const ParamGroup& a, const ParamGroup& b) {
    if (a.optimizer != b.optimizer) return a.optimizer == ADAMW;
    return a.weight_decay > b.weight_decay;
  });
  return groups;
}

std::vector<std::string> DescribeParamGroups(const std::vector<ParamGroup>& groups,
                                             int line_width) {
  std::vector<std::string> lines;
  for (const ParamGroup& group : groups) {
    int64_t values = 0;
    for (const Parameter* param : group.params) values += param->master.numel();
    std::string line = absl::StrFormat("%s lr=%g decay=%g (%d tensors, %d values):",
                                       UpdateRuleName(group.optimizer), group.lr,
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

#include "configs/validate.h"

#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"

namespace sinklab {
namespace {

// Accumulates problems as "<location>: <message>" (just the message when no text set any
// of the fields involved: they hold schema defaults).
class Checker {
 public:
  explicit Checker(const ConfigSource& source) : source_(source) {}

  // Records `message`, located where the latest text (in merge order) that set one of
  // `fields` set it, which is most likely the edit that broke the config; among fields of
  // that text, the first listed.
  void Fail(std::initializer_list<absl::string_view> fields, const std::string& message) {
    std::string best_location;
    int best_text = -1;
    for (absl::string_view field : fields) {
      int text = -1;
      const std::string location = source_.LocationOf(field, &text);
      if (text > best_text) {
        best_text = text;
        best_location = location;
      }
    }
    problems_.push_back(best_location.empty() ? message
                                              : absl::StrCat(best_location, ": ", message));
  }

  void AtLeast(absl::string_view path, int64_t value, int64_t min) {
    if (value < min) Fail({path}, absl::StrCat(path, "=", value, " must be >= ", min));
  }

  // value in the interval; `lo_open`/`hi_open` exclude the bound. NaN and inf fail too.
  void InRange(absl::string_view path, float value, double lo, bool lo_open, double hi,
               bool hi_open) {
    const bool ok = std::isfinite(value) && (lo_open ? value > lo : value >= lo) &&
                    (hi_open ? value < hi : value <= hi);
    if (!ok) {
      Fail({path}, absl::StrCat(path, "=", value, " must be in ", lo_open ? "(" : "[", lo,
                                ", ", hi, hi_open ? ")" : "]"));
    }
  }

  // Finite and > 0.
  void Positive(absl::string_view path, float value) {
    if (!(std::isfinite(value) && value > 0)) {
      Fail({path}, absl::StrCat(path, "=", value, " must be a finite number > 0"));
    }
  }

  // Finite and >= 0.
  void NonNegative(absl::string_view path, float value) {
    if (!(std::isfinite(value) && value >= 0)) {
      Fail({path}, absl::StrCat(path, "=", value, " must be a finite number >= 0"));
    }
  }

  absl::Status Result() const {
    if (problems_.empty()) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrJoin(problems_, "\n"));
  }

 private:
  const ConfigSource& source_;
  std::vector<std::string> problems_;
};

void CheckName(const Config& config, Checker& check) {
  // The run directory is <train.run_root>/<name>: one path component.
  const std::string& name = config.name();
  if (name.empty() || name == "." || name == ".." ||
      name.find('/') != std::string::npos) {
    check.Fail({"name"}, absl::StrCat("name=\"", name,
                                      "\" must be a non-empty folder name without '/' "
                                      "(the run directory is <train.run_root>/<name>)"));
  }
}

// The sink mitigations (DESIGN.md section 5). They all combine: every normalizer works with
// KV bias (the bias key is one more key of the row), gates (they act on V or on the
// normalized output, whatever the normalizer), prefix tokens (more positions) and QK-norm
// (before the scores); no combination is impossible. What is refused is a setting that
// would silently do nothing (a normalizer's parameter set to a non-default value for another
// normalizer, a non-default gate granularity without a gate position) and out-of-range
// values.
void CheckAttention(const ModelConfig& model, Checker& check) {
  const AttentionConfig& attention = model.attention();
  const AttentionConfig::Normalizer normalizer = attention.normalizer();
  const std::string chosen = absl::StrCat("model.attention.normalizer=",
                                          AttentionConfig::Normalizer_Name(normalizer));
  // A normalizer's own parameter, set while another normalizer is chosen.
  auto no_effect = [&](bool is_set, AttentionConfig::Normalizer owner,
                       absl::string_view field) {
    if (!is_set || normalizer == owner) return;
    const std::string path = absl::StrCat("model.attention.", field);
    check.Fail({path}, absl::StrCat(path, " has no effect with ", chosen, " (it belongs to ",
                                    AttentionConfig::Normalizer_Name(owner), ")"));
  };
  // "Set" means set to a value other than the schema default: a resolved config (run
  // directories save every field with its default) must load again.
  const AttentionConfig& defaults = AttentionConfig::default_instance();
  no_effect(attention.sink_logit_init() != defaults.sink_logit_init(),
            AttentionConfig::SINK_LOGIT, "sink_logit_init");
  no_effect(attention.softpick_eps() != defaults.softpick_eps(), AttentionConfig::SOFTPICK,
            "softpick_eps");
  no_effect(attention.has_sigmoid_bias(), AttentionConfig::SIGMOID, "sigmoid_bias");
  no_effect(attention.clip_gamma() != defaults.clip_gamma(), AttentionConfig::CLIPPED_SOFTMAX,
            "clip_gamma");
  no_effect(attention.clip_zeta() != defaults.clip_zeta(), AttentionConfig::CLIPPED_SOFTMAX,
            "clip_zeta");
  if (normalizer == AttentionConfig::SINK_LOGIT && !std::isfinite(attention.sink_logit_init())) {
    check.Fail({"model.attention.sink_logit_init"},
               absl::StrCat("model.attention.sink_logit_init=", attention.sink_logit_init(),
                            " must be finite"));
  }
  if (normalizer == AttentionConfig::SOFTPICK) {
    check.Positive("model.attention.softpick_eps", attention.softpick_eps());
  }
  if (normalizer == AttentionConfig::SIGMOID && attention.has_sigmoid_bias() &&
      !std::isfinite(attention.sigmoid_bias())) {
    check.Fail({"model.attention.sigmoid_bias"},
               absl::StrCat("model.attention.sigmoid_bias=", attention.sigmoid_bias(),
                            " must be finite (unset means -ln(number of keys))"));
  }
  if (normalizer == AttentionConfig::CLIPPED_SOFTMAX) {
    // Bondarenko et al. 2023: gamma <= 0 stretches below 0, zeta >= 1 above 1, so that
    // clipping can reach exact 0 / 1; the other signs would clip weights that softmax
    // itself can produce, for no gain.
    if (!(std::isfinite(attention.clip_gamma()) && attention.clip_gamma() <= 0)) {
      check.Fail({"model.attention.clip_gamma"},
                 absl::StrCat("model.attention.clip_gamma=", attention.clip_gamma(),
                              " must be <= 0 (Bondarenko et al. 2023: gamma stretches the "
                              "softmax below 0)"));
    }
    if (!(std::isfinite(attention.clip_zeta()) && attention.clip_zeta() >= 1)) {
      check.Fail({"model.attention.clip_zeta"},
                 absl::StrCat("model.attention.clip_zeta=", attention.clip_zeta(),
                              " must be >= 1 (Bondarenko et al. 2023: zeta stretches the "
                              "softmax above 1)"));
    }
  }
  const GateConfig& gate = attention.gate();
  if (gate.position() == GateConfig::NONE &&
      gate.granularity() != GateConfig::default_instance().granularity()) {
    check.Fail({"model.attention.gate.granularity", "model.attention.gate.position"},
               absl::StrCat("model.attention.gate.granularity=",
                            GateConfig::Granularity_Name(gate.granularity()),
                            " has no effect with model.attention.gate.position=NONE (set "
                            "SDPA_OUTPUT or VALUE)"));
  }
  check.AtLeast("model.prefix_tokens", model.prefix_tokens(), 0);
}

void CheckModel(const ModelConfig& model, Checker& check) {
  check.AtLeast("model.vocab_size", model.vocab_size(), 1);
  check.AtLeast("model.d_model", model.d_model(), 1);
  check.AtLeast("model.n_layers", model.n_layers(), 1);
  check.AtLeast("model.n_heads", model.n_heads(), 1);
  if (model.d_model() >= 1 && model.n_heads() >= 1) {
    if (model.d_model() % model.n_heads() != 0) {
      check.Fail({"model.d_model", "model.n_heads"},
                 absl::StrCat("model.d_model=", model.d_model(),
                              " is not divisible by model.n_heads=", model.n_heads()));
    } else if ((model.d_model() / model.n_heads()) % 2 != 0) {
      // RoPE rotates channel pairs (Su et al. 2021), so the head dim must be even.
      check.Fail({"model.d_model", "model.n_heads"},
                 absl::StrCat("head dim model.d_model / model.n_heads = ", model.d_model(),
                              " / ", model.n_heads(), " = ", model.d_model() / model.n_heads(),
                              " is odd; RoPE rotates pairs of channels and needs it even"));
    }
  }
  check.AtLeast("model.n_kv_heads", model.n_kv_heads(), 0);
  if (model.n_kv_heads() > 0 && model.n_heads() >= 1 &&
      model.n_heads() % model.n_kv_heads() != 0) {
    check.Fail({"model.n_kv_heads", "model.n_heads"},
               absl::StrCat("model.n_kv_heads=", model.n_kv_heads(),
                            " does not divide model.n_heads=", model.n_heads(),
                            " (0 means n_heads)"));
  }
  check.AtLeast("model.ffn_hidden", model.ffn_hidden(), 1);
  check.Positive("model.rope_theta", model.rope_theta());
  check.Positive("model.norm_eps", model.norm_eps());
  check.Positive("model.init_std", model.init_std());
  CheckAttention(model, check);
}

void CheckData(const Config& config, Checker& check) {
  const DataConfig& data = config.data();
  if (data.train_shards().empty() && data.text_corpus().empty()) {
    check.Fail({"data.train_shards", "data.text_corpus"},
               "neither data.train_shards nor data.text_corpus is set: no training tokens");
  }
  check.InRange("data.val_fraction", data.val_fraction(), 0, false, 0.5, false);
  check.AtLeast("data.seq_len", data.seq_len(), 1);
  // Byte-level text: token ids 0..255 are bytes, 256 is BOS.
  if (data.train_shards().empty() && !data.text_corpus().empty()) {
    const int needed = data.bos_at_doc_start() ? 257 : 256;
    if (config.model().vocab_size() < needed) {
      check.Fail({"model.vocab_size", "data.text_corpus"},
                 absl::StrCat("model.vocab_size=", config.model().vocab_size(),
                              " is too small for byte-level data.text_corpus: needs >= ",
                              needed, data.bos_at_doc_start() ? " (256 bytes + BOS)" : ""));
    }
  }
  // Eval and statistics read held-out tokens: val_shards, or the last val_fraction.
  const bool has_held_out = !data.val_shards().empty() || data.val_fraction() > 0;
  if (!has_held_out && (config.train().eval_batches() > 0 || config.stats().every() > 0)) {
    check.Fail({"data.val_fraction", "train.eval_batches", "stats.every"},
               absl::StrCat("data.val_fraction=0 and no data.val_shards leave no held-out "
                            "tokens, but train.eval_batches=", config.train().eval_batches(),
                            " and stats.every=", config.stats().every(),
                            " need them (set both to 0, or hold out tokens)"));
  }
}

// Muon (optim/muon.h) and the routing overrides (optim/param_groups.h). Checked whether or
// not Muon is in use, so a sweep axis that switches it on cannot meet a bad value late.
void CheckMuon(const OptimConfig& optim, Checker& check) {
  const MuonConfig& muon = optim.muon();
  check.InRange("optim.muon.momentum", muon.momentum(), 0, false, 1, true);
  check.AtLeast("optim.muon.ns_steps", muon.ns_steps(), 1);
  if (muon.has_lr()) check.Positive("optim.muon.lr", muon.lr());
  if (muon.has_weight_decay()) check.NonNegative("optim.muon.weight_decay", muon.weight_decay());
  for (int i = 0; i < optim.param_override_size(); ++i) {
    const ParamOverride& entry = optim.param_override(i);
    // Located at the element: its index counts across merged texts, as a merge appends.
    const std::string element = absl::StrCat("optim.param_override[", i, "]");
    if (entry.name().empty()) {
      check.Fail({element}, absl::StrCat(element, ".name is empty: it must name parameters "
                                                  "(a glob, e.g. \"layers.*.attn.wq\")"));
    }
    if (entry.has_weight_decay() &&
        !(std::isfinite(entry.weight_decay()) && entry.weight_decay() >= 0)) {
      check.Fail({element}, absl::StrCat(element, ".weight_decay=", entry.weight_decay(),
                                         " must be a finite number >= 0"));
    }
  }
}

void CheckOptim(const OptimConfig& optim, Checker& check) {
  check.Positive("optim.lr", optim.lr());
  check.AtLeast("optim.warmup_steps", optim.warmup_steps(), 0);
  check.InRange("optim.min_lr_ratio", optim.min_lr_ratio(), 0, false, 1, false);
  check.InRange("optim.decay_fraction", optim.decay_fraction(), 0, true, 1, false);
  check.NonNegative("optim.weight_decay", optim.weight_decay());
  check.InRange("optim.beta1", optim.beta1(), 0, false, 1, true);
  check.InRange("optim.beta2", optim.beta2(), 0, false, 1, true);
  check.Positive("optim.eps", optim.eps());
  check.NonNegative("optim.grad_clip", optim.grad_clip());
  CheckMuon(optim, check);
}

void CheckTrain(const TrainConfig& train, Checker& check) {
  check.AtLeast("train.steps", train.steps(), 1);
  check.AtLeast("train.batch_size", train.batch_size(), 1);
  check.AtLeast("train.micro_batch_size", train.micro_batch_size(), 0);
  if (train.micro_batch_size() > 0 && train.batch_size() >= 1 &&
      train.batch_size() % train.micro_batch_size() != 0) {
    check.Fail({"train.micro_batch_size", "train.batch_size"},
               absl::StrCat("train.micro_batch_size=", train.micro_batch_size(),
                            " does not divide train.batch_size=", train.batch_size(),
                            " (0 means batch_size)"));
  }
  check.AtLeast("train.log_every", train.log_every(), 1);
  check.AtLeast("train.eval_every", train.eval_every(), 0);
  check.AtLeast("train.eval_batches", train.eval_batches(), 0);
}

void CheckStats(const Config& config, Checker& check) {
  const StatsConfig& stats = config.stats();
  check.AtLeast("stats.every", stats.every(), 0);
  check.AtLeast("stats.window", stats.window(), 1);
  for (int i = 0; i < stats.eps_size(); ++i) {
    check.InRange(absl::StrCat("stats.eps[", i, "]"), stats.eps(i), 0, true, 1, true);
  }
  check.AtLeast("stats.batch_size", stats.batch_size(), 1);
  // Sink^eps truncates held-out sequences to their first `window` tokens.
  if (stats.every() > 0 && stats.window() > config.data().seq_len()) {
    check.Fail({"stats.window", "data.seq_len"},
               absl::StrCat("stats.window=", stats.window(),
                            " is longer than the sequences: data.seq_len=",
                            config.data().seq_len()));
  }
}

void CheckCheckpoint(const CheckpointConfig& checkpoint, Checker& check) {
  check.AtLeast("checkpoint.every", checkpoint.every(), 0);
  check.AtLeast("checkpoint.keep", checkpoint.keep(), 0);
}

}  // namespace

absl::Status ValidateConfig(const Config& config, const ConfigSource& source) {
  Checker check(source);
  CheckName(config, check);
  CheckModel(config.model(), check);
  CheckData(config, check);
  CheckOptim(config.optim(), check);
  CheckTrain(config.train(), check);
  CheckStats(config, check);
  CheckCheckpoint(config.checkpoint(), check);
  return check.Result();
}

absl::Status ValidateConfig(const Config& config) {
  return ValidateConfig(config, ConfigSource());
}

}  // namespace sinklab

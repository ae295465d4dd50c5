// ValidateConfig: each invalid value or impossible combination is refused naming the field
// by its full path and the text:line:column that set it; boundary values are accepted.
#include "configs/validate.h"

#include <string>
#include <vector>

#include "configs/config_loader.h"
#include "gtest/gtest.h"
#include "tests/configs/status_text.h"

namespace sinklab {
namespace {

// A small valid config; line numbers matter for the tests below.
constexpr char kValidConfig[] =
    "name: \"t\"\n"              // line 1
    "model {\n"                  // line 2
    "  vocab_size: 264\n"        // line 3
    "  d_model: 64\n"            // line 4
    "  n_heads: 4\n"             // line 5
    "}\n"                        // line 6
    "data { seq_len: 64 }\n"     // line 7
    "train {\n"                  // line 8
    "  batch_size: 16\n"         // line 9
    "  micro_batch_size: 4\n"    // line 10
    "}\n";

absl::Status LoadWith(const std::vector<std::string>& overrides) {
  return LoadConfigFromText(kValidConfig, "x.textproto", overrides).status();
}

TEST(ValidateConfigTest, ValidConfigPasses) { EXPECT_TRUE(LoadWith({}).ok()) << LoadWith({}); }

TEST(ValidateConfigTest, DModelNotDivisibleByHeadsNamesFieldAndFileLine) {
  const absl::Status status = LoadConfigFromText(
      "name: \"t\"\nmodel {\n  vocab_size: 264\n  d_model: 770\n  n_heads: 12\n}\n",
      "configs/bad.textproto", {})
                                  .status();
  ASSERT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(),
            "configs/bad.textproto:4:3: model.d_model=770 is not divisible by "
            "model.n_heads=12");
}

TEST(ValidateConfigTest, ProblemCausedBySetPointsAtTheFragment) {
  // d_model 64 comes from the file, n_heads 6 from the fragment: the fragment is blamed.
  EXPECT_TRUE(MessageStartsWith(LoadWith({"seed: 1", "model { n_heads: 6 }"}),
                                "--set[2]:1:9: model.d_model=64 is not divisible by "
                                "model.n_heads=6"));
}

TEST(ValidateConfigTest, MicroBatchNotDividingBatchIsRefused) {
  EXPECT_TRUE(MessageStartsWith(LoadWith({"train { micro_batch_size: 5 }"}),
                                "--set[1]:1:9: train.micro_batch_size=5 does not divide "
                                "train.batch_size=16"));
  // Set in the file: the file's line.
  const absl::Status status =
      LoadConfigFromText("train {\n  batch_size: 6\n  micro_batch_size: 4\n}\n", "y", {})
          .status();
  EXPECT_TRUE(MessageStartsWith(status, "y:3:3: train.micro_batch_size=4"));
}

TEST(ValidateConfigTest, DefaultValuedFieldsAreNamedWithoutLocation) {
  Config config;
  config.mutable_model()->set_n_heads(7);  // default d_model 768, set in code
  const absl::Status status = ValidateConfig(config);
  EXPECT_TRUE(MessageStartsWith(status, "model.d_model=768 is not divisible by "
                                        "model.n_heads=7"));
}

TEST(ValidateConfigTest, ReportsEveryProblemAtOnce) {
  const absl::Status status = LoadWith({"optim { lr: 0 } train { steps: 0 }"});
  EXPECT_TRUE(MessageContains(status, "--set[1]:1:9: optim.lr=0 must be"));
  EXPECT_TRUE(MessageContains(status, "\n--set[1]:1:25: train.steps=0 must be >= 1"));
}

TEST(ValidateConfigTest, ParamOverrideIsLocatedByItsIndexAcrossMergedTexts) {
  // The second override (index 1 after the merge) is the first of --set[2].
  EXPECT_TRUE(MessageStartsWith(
      LoadWith({"optim { param_override { name: \"lm_head\" } }",
                "optim { param_override { optimizer: MUON } }"}),
      "--set[2]:1:9: optim.param_override[1].name is empty"));
}

TEST(ValidateConfigTest, RepeatedFieldElementIsLocatedByOccurrence) {
  EXPECT_TRUE(MessageStartsWith(LoadWith({"stats { eps: 0.3 eps: 1.0 }"}),
                                "--set[1]:1:18: stats.eps[1]=1 must be in (0, 1)"));
}

// Each fragment, merged over kValidConfig, must be refused with a message naming `field`,
// located in the fragment.
struct BadCase {
  const char* fragment;
  const char* expected;  // substring of the message
};

TEST(ValidateConfigTest, RefusesEachInvalidValueNamingItsField) {
  const std::vector<BadCase> cases = {
      {"name: \"a/b\"", "name=\"a/b\" must be a non-empty folder name"},
      {"name: \"\"", "name=\"\" must be"},
      {"model { vocab_size: 0 }", "model.vocab_size=0 must be >= 1"},
      {"model { d_model: 0 }", "model.d_model=0 must be >= 1"},
      {"model { n_layers: 0 }", "model.n_layers=0 must be >= 1"},
      {"model { n_heads: 0 }", "model.n_heads=0 must be >= 1"},
      {"model { d_model: 60 }", "model.d_model / model.n_heads = 60 / 4 = 15 is odd"},
      {"model { n_kv_heads: 3 }", "model.n_kv_heads=3 does not divide model.n_heads=4"},
      {"model { n_kv_heads: -1 }", "model.n_kv_heads=-1 must be >= 0"},
      {"model { ffn_hidden: 0 }", "model.ffn_hidden=0 must be >= 1"},
      {"model { rope_theta: 0 }", "model.rope_theta=0 must be a finite number > 0"},
      {"model { rope_theta: inf }", "model.rope_theta=inf must be"},
      {"model { norm_eps: -1e-5 }", "model.norm_eps=-1e-05 must be"},
      {"model { init_std: 0 }", "model.init_std=0 must be"},
      {"model { vocab_size: 256 }", "model.vocab_size=256 is too small for byte-level"},
      {"data { text_corpus: \"\" }", "neither data.train_shards nor data.text_corpus"},
      {"data { val_fraction: 0.6 }", "data.val_fraction=0.6 must be in [0, 0.5]"},
      {"data { val_fraction: -0.1 }", "data.val_fraction=-0.1 must be in [0, 0.5]"},
      {"data { val_fraction: 0 }", "leave no held-out tokens"},
      {"data { seq_len: 0 }", "data.seq_len=0 must be >= 1"},
      {"optim { lr: 0 }", "optim.lr=0 must be a finite number > 0"},
      {"optim { lr: nan }", "optim.lr=nan must be"},
      {"optim { warmup_steps: -1 }", "optim.warmup_steps=-1 must be >= 0"},
      {"optim { min_lr_ratio: 1.5 }", "optim.min_lr_ratio=1.5 must be in [0, 1]"},
      {"optim { decay_fraction: 0 }", "optim.decay_fraction=0 must be in (0, 1]"},
      {"optim { beta1: 1 }", "optim.beta1=1 must be in [0, 1)"},
      {"optim { beta2: -0.5 }", "optim.beta2=-0.5 must be in [0, 1)"},
      {"optim { eps: 0 }", "optim.eps=0 must be a finite number > 0"},
      {"optim { weight_decay: -0.1 }", "optim.weight_decay=-0.1 must be a finite number >= 0"},
      {"optim { grad_clip: -1 }", "optim.grad_clip=-1 must be a finite number >= 0"},
      {"optim { muon { momentum: 1 } }", "optim.muon.momentum=1 must be in [0, 1)"},
      {"optim { muon { momentum: -0.1 } }", "optim.muon.momentum=-0.1 must be in [0, 1)"},
      {"optim { muon { ns_steps: 0 } }", "optim.muon.ns_steps=0 must be >= 1"},
      {"optim { muon { lr: 0 } }", "optim.muon.lr=0 must be a finite number > 0"},
      {"optim { muon { lr: -0.02 } }", "optim.muon.lr=-0.02 must be a finite number > 0"},
      {"optim { muon { weight_decay: -1 } }",
       "optim.muon.weight_decay=-1 must be a finite number >= 0"},
      {"optim { param_override { optimizer: MUON } }",
       "optim.param_override[0].name is empty: it must name parameters"},
      {"optim { param_override { name: \"lm_head\" weight_decay: -0.5 } }",
       "optim.param_override[0].weight_decay=-0.5 must be a finite number >= 0"},
      {"train { steps: 0 }", "train.steps=0 must be >= 1"},
      {"train { batch_size: 0 }", "train.batch_size=0 must be >= 1"},
      {"train { micro_batch_size: -4 }", "train.micro_batch_size=-4 must be >= 0"},
      {"train { log_every: 0 }", "train.log_every=0 must be >= 1"},
      {"train { eval_every: -1 }", "train.eval_every=-1 must be >= 0"},
      {"train { eval_batches: -1 }", "train.eval_batches=-1 must be >= 0"},
      {"stats { every: -1 }", "stats.every=-1 must be >= 0"},
      {"stats { window: 0 }", "stats.window=0 must be >= 1"},
      {"stats { window: 65 }", "stats.window=65 is longer than the sequences: data.seq_len=64"},
      {"stats { eps: 0 }", "stats.eps[0]=0 must be in (0, 1)"},
      {"stats { batch_size: 0 }", "stats.batch_size=0 must be >= 1"},
      {"checkpoint { every: -1 }", "checkpoint.every=-1 must be >= 0"},
      {"checkpoint { keep: -1 }", "checkpoint.keep=-1 must be >= 0"},
  };
  for (const BadCase& bad : cases) {
    SCOPED_TRACE(bad.fragment);
    const absl::Status status = LoadWith({bad.fragment});
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_TRUE(MessageStartsWith(status, "--set[1]:1:"));
    EXPECT_TRUE(MessageContains(status, bad.expected));
  }
}

TEST(ValidateConfigTest, AcceptsBoundaryValues) {
  const std::vector<std::string> fragments = {
      "data { val_fraction: 0.5 }",
      "optim { min_lr_ratio: 0 decay_fraction: 1 beta1: 0 beta2: 0 }",
      "optim { min_lr_ratio: 1 weight_decay: 0 grad_clip: 0 warmup_steps: 0 }",
      "optim { matrix_optimizer: MUON muon { momentum: 0 ns_steps: 1 weight_decay: 0 } }",
      "optim { muon { momentum: 0.999 lr: 1e-6 scaling: MOONSHOT nesterov: false } }",
      "optim { param_override { name: \"*\" optimizer: ADAMW weight_decay: 0 } }",
      "train { micro_batch_size: 0 eval_every: 0 eval_batches: 0 }",
      "train { micro_batch_size: 16 }",
      "model { n_kv_heads: 2 }",
      "model { n_kv_heads: 4 vocab_size: 257 }",
      "model { vocab_size: 256 } data { bos_at_doc_start: false }",
      "stats { every: 0 window: 1000 }",  // window only matters when stats are on
      "stats { window: 64 eps: 0.001 eps: 0.999 }",
      "checkpoint { every: 0 keep: 0 }",
      "data { val_fraction: 0 } train { eval_batches: 0 } stats { every: 0 }",
      "data { val_fraction: 0 val_shards: \"v_*.bin\" }",
      // Shards need no byte-level vocabulary, and then text_corpus may be empty.
      "model { vocab_size: 8 } data { train_shards: \"t_*.bin\" text_corpus: \"\" }",
  };
  for (const std::string& fragment : fragments) {
    SCOPED_TRACE(fragment);
    EXPECT_TRUE(LoadWith({fragment}).ok()) << LoadWith({fragment});
  }
}

}  // namespace
}  // namespace sinklab

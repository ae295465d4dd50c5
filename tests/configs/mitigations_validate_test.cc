// ValidateConfig's rules for the sink mitigations: every combination of switches loads; a
// normalizer's parameter set (to a non-default value) for another normalizer, a gate
// granularity without a position, and out-of-range values are refused naming the field,
// file:line:col and why.
#include <string>
#include <vector>

#include "configs/config_loader.h"
#include "configs/validate.h"
#include "gtest/gtest.h"
#include "tests/configs/status_text.h"

namespace sinklab {
namespace {

constexpr char kBase[] =
    "name: \"t\"\n"           // line 1
    "model {\n"               // line 2
    "  vocab_size: 264\n"     // line 3
    "  d_model: 64\n"         // line 4
    "  n_heads: 4\n"          // line 5
    "}\n"                     // line 6
    "data { seq_len: 64 }\n"  // line 7
    "train { batch_size: 16 }\n";

absl::Status LoadWith(const std::vector<std::string>& overrides) {
  return LoadConfigFromText(kBase, "x.textproto", overrides).status();
}

TEST(MitigationsValidateTest, EveryCombinationOfSwitchesIsAccepted) {
  const std::vector<std::string> normalizers = {"SOFTMAX", "SOFTMAX1", "SINK_LOGIT",
                                                "SOFTPICK", "SIGMOID", "CLIPPED_SOFTMAX"};
  const std::vector<std::string> gates = {
      "", "gate { position: SDPA_OUTPUT }", "gate { position: VALUE granularity: HEADWISE }"};
  for (const std::string& normalizer : normalizers) {
    for (const std::string& gate : gates) {
      for (const char* kv_bias : {"false", "true"}) {
        for (const char* prefix : {"0", "4"}) {
          const std::string fragment =
              "model { prefix_tokens: " + std::string(prefix) +
              " attention { normalizer: " + normalizer + " kv_bias: " + kv_bias +
              " qk_norm: true " + gate + " } }";
          SCOPED_TRACE(fragment);
          EXPECT_TRUE(LoadWith({fragment}).ok()) << LoadWith({fragment});
        }
      }
    }
  }
}

TEST(MitigationsValidateTest, NormalizerParametersOfAnotherNormalizerHaveNoEffect) {
  struct Case {
    std::string fragment, expected;
  };
  const std::vector<Case> cases = {
      {"model { attention { sigmoid_bias: -2 } }",
       "--set[1]:1:21: model.attention.sigmoid_bias has no effect with "
       "model.attention.normalizer=SOFTMAX (it belongs to SIGMOID)"},
      {"model { attention { normalizer: SOFTMAX1 clip_gamma: -0.1 } }",
       "model.attention.clip_gamma has no effect with model.attention.normalizer=SOFTMAX1 "
       "(it belongs to CLIPPED_SOFTMAX)"},
      {"model { attention { clip_zeta: 1.1 } }", "model.attention.clip_zeta has no effect"},
      {"model { attention { normalizer: SIGMOID sink_logit_init: 1 } }",
       "model.attention.sink_logit_init has no effect with model.attention.normalizer=SIGMOID"},
      {"model { attention { normalizer: SINK_LOGIT softpick_eps: 1e-3 } }",
       "model.attention.softpick_eps has no effect"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.fragment);
    EXPECT_TRUE(MessageContains(LoadWith({c.fragment}), c.expected));
  }
  // The schema default written explicitly (as a run directory's resolved config does) is
  // accepted; so are the parameters with their own normalizer.
  EXPECT_TRUE(LoadWith({"model { attention { clip_gamma: -0.03 clip_zeta: 1 softpick_eps: "
                        "1e-6 sink_logit_init: 0 gate { granularity: ELEMENTWISE } } }"})
                  .ok());
  for (const std::string fragment :
       {"model { attention { normalizer: SIGMOID sigmoid_bias: -2 } }",
        "model { attention { normalizer: CLIPPED_SOFTMAX clip_gamma: 0 clip_zeta: 1 } }",
        "model { attention { normalizer: SINK_LOGIT sink_logit_init: -3 } }",
        "model { attention { normalizer: SOFTPICK softpick_eps: 1e-9 } }"}) {
    EXPECT_TRUE(LoadWith({fragment}).ok()) << fragment << ": " << LoadWith({fragment});
  }
}

TEST(MitigationsValidateTest, RefusesOutOfRangeMitigationValues) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"model { attention { normalizer: CLIPPED_SOFTMAX clip_gamma: 0.1 } }",
       "model.attention.clip_gamma=0.1 must be <= 0"},
      {"model { attention { normalizer: CLIPPED_SOFTMAX clip_zeta: 0.9 } }",
       "model.attention.clip_zeta=0.9 must be >= 1"},
      {"model { attention { normalizer: SOFTPICK softpick_eps: 0 } }",
       "model.attention.softpick_eps=0 must be a finite number > 0"},
      {"model { attention { normalizer: SOFTPICK softpick_eps: -1 } }",
       "model.attention.softpick_eps=-1 must be a finite number > 0"},
      {"model { attention { normalizer: SIGMOID sigmoid_bias: inf } }",
       "model.attention.sigmoid_bias=inf must be finite"},
      {"model { prefix_tokens: -1 }", "model.prefix_tokens=-1 must be >= 0"},
  };
  for (const auto& [fragment, expected] : cases) {
    SCOPED_TRACE(fragment);
    EXPECT_TRUE(MessageContains(LoadWith({fragment}), expected));
  }
}

TEST(MitigationsValidateTest, GateGranularityWithoutPositionIsRefusedWithItsLocation) {
  const absl::Status status = LoadConfigFromText(
      "model {\n  attention {\n    gate { granularity: HEADWISE }\n  }\n}\n", "g.textproto", {})
                                  .status();
  EXPECT_TRUE(MessageStartsWith(
      status, "g.textproto:3:12: model.attention.gate.granularity=HEADWISE has no effect with "
              "model.attention.gate.position=NONE"));
}

}  // namespace
}  // namespace sinklab

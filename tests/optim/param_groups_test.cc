#include "optim/param_groups.h"

#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/optim/parameter_store.h"

namespace sinklab {
namespace {

// Routing that must succeed.
std::vector<ParamGroup> Route(const std::vector<Parameter*>& params, const OptimConfig& config) {
  absl::StatusOr<std::vector<ParamGroup>> groups = RouteParamGroups(params, config);
  EXPECT_TRUE(groups.ok()) << groups.status();
  return groups.ok() ? *std::move(groups) : std::vector<ParamGroup>();
}

std::vector<std::string> Names(const ParamGroup& group) {
  std::vector<std::string> names;
  for (const Parameter* param : group.params) names.push_back(param->name);
  return names;
}

// One parameter of every kind, in model order.
void AddOneOfEachKind(ParameterStore* store) {
  store->Add("embed", ParamKind::kEmbedding, {8, 4});
  store->Add("layers.0.attn_norm", ParamKind::kNorm, {4});
  store->Add("layers.0.attn.wq", ParamKind::kMatrix, {4, 4});
  store->Add("layers.0.attn.bq", ParamKind::kBias, {4});
  store->Add("norm", ParamKind::kNorm, {4});
  store->Add("lm_head", ParamKind::kHead, {8, 4});
}

TEST(ParamGroupsTest, DefaultConfigDecaysMatricesAndHeadOnly) {
  ParameterStore store;
  AddOneOfEachKind(&store);
  OptimConfig config;
  config.set_weight_decay(0.1f);
  const std::vector<ParamGroup> groups = Route(store.all(), config);
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_EQ(groups[0].optimizer, ADAMW);
  EXPECT_EQ(groups[0].name, "adamw_decay0.1");
  EXPECT_FLOAT_EQ(groups[0].lr, config.lr());
  EXPECT_FLOAT_EQ(groups[0].weight_decay, 0.1f);
  EXPECT_EQ(Names(groups[0]), (std::vector<std::string>{"layers.0.attn.wq", "lm_head"}));
  EXPECT_FLOAT_EQ(groups[1].weight_decay, 0.0f);
  EXPECT_EQ(Names(groups[1]), (std::vector<std::string>{"embed", "layers.0.attn_norm",
                                                         "layers.0.attn.bq", "norm"}));
}

TEST(ParamGroupsTest, EachDecayFlagMovesOnlyItsKindIntoTheDecayGroup) {
  struct Case {
    void (OptimConfig::*set)(bool);
    ParamKind kind;
  };
  const Case cases[] = {{&OptimConfig::set_decay_norms, ParamKind::kNorm},
                        {&OptimConfig::set_decay_biases, ParamKind::kBias},
                        {&OptimConfig::set_decay_embeddings, ParamKind::kEmbedding}};
  const ParamKind all_kinds[] = {ParamKind::kMatrix, ParamKind::kHead, ParamKind::kEmbedding,
                                 ParamKind::kNorm, ParamKind::kBias};
  for (const Case& c : cases) {
    OptimConfig config;
    (config.*c.set)(true);
    for (const ParamKind kind : all_kinds) {
      const bool expected =
          kind == ParamKind::kMatrix || kind == ParamKind::kHead || kind == c.kind;
      EXPECT_EQ(DecaysWeight(kind, config), expected)
          << "flag for kind " << static_cast<int>(c.kind) << ", kind " << static_cast<int>(kind);
      EXPECT_FLOAT_EQ(WeightDecayFor(kind, config), expected ? config.weight_decay() : 0.0f);
    }
  }
}

TEST(ParamGroupsTest, EmptyGroupIsLeftOut) {
  ParameterStore store;
  store.Add("norm", ParamKind::kNorm, {4});
  store.Add("bias", ParamKind::kBias, {4});
  const std::vector<ParamGroup> groups = Route(store.all(), OptimConfig());
  ASSERT_EQ(groups.size(), 1u);
  EXPECT_FLOAT_EQ(groups[0].weight_decay, 0.0f);
  EXPECT_EQ(Names(groups[0]), (std::vector<std::string>{"norm", "bias"}));
}

TEST(ParamGroupsTest, DescriptionListsEachGroupWithNamesShapesAndCounts) {
  ParameterStore store;
  AddOneOfEachKind(&store);
  OptimConfig config;
  config.set_weight_decay(0.1f);
  const std::vector<std::string> lines =
      DescribeParamGroups(Route(store.all(), config), /*line_width=*/200);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0],
            "adamw lr=0.0006 decay=0.1 (2 tensors, 48 values): layers.0.attn.wq [4, 4], "
            "lm_head [8, 4]");
  EXPECT_EQ(lines[1],
            "adamw lr=0.0006 decay=0 (4 tensors, 44 values): embed [8, 4], "
            "layers.0.attn_norm [4], "
            "layers.0.attn.bq [4], norm [4]");
}

TEST(ParamGroupsTest, LongDescriptionWrapsAtLineWidthKeepingEveryName) {
  ParameterStore store;
  for (int layer = 0; layer < 12; ++layer) {
    for (const char* proj : {"wq", "wk", "wv", "wo"}) {
      store.Add(absl::StrCat("layers.", layer, ".attn.", proj), ParamKind::kMatrix, {2, 2});
    }
  }
  const int width = 80;
  const std::vector<std::string> lines =
      DescribeParamGroups(Route(store.all(), OptimConfig()), width);
  ASSERT_GT(lines.size(), 1u);
  EXPECT_TRUE(absl::StartsWith(lines[0], "adamw lr=0.0006 decay=0.1 (48 tensors, 192 values):"));
  std::string joined;
  for (size_t i = 0; i < lines.size(); ++i) {
    EXPECT_LE(static_cast<int>(lines[i].size()), width) << lines[i];
    if (i > 0) {
      EXPECT_TRUE(absl::StartsWith(lines[i], "    ")) << lines[i];
      EXPECT_NE(lines[i][4], ' ') << lines[i];
    }
    joined += lines[i];
  }
  for (const Parameter* param : store.all()) {
    EXPECT_TRUE(absl::StrContains(joined, absl::StrCat(param->name, " [2, 2]"))) << param->name;
  }
}

// Two blocks' worth of names, so globs have something to choose from.
void AddTwoBlocks(ParameterStore* store) {
  store->Add("embed", ParamKind::kEmbedding, {8, 4});
  for (int layer = 0; layer < 2; ++layer) {
    const std::string prefix = absl::StrCat("layers.", layer, ".");
    store->Add(prefix + "attn_norm", ParamKind::kNorm, {4});
    store->Add(prefix + "attn.wq", ParamKind::kMatrix, {4, 4});
    store->Add(prefix + "attn.wo", ParamKind::kMatrix, {4, 4});
    store->Add(prefix + "mlp.w_up", ParamKind::kMatrix, {6, 4});
  }
  store->Add("norm", ParamKind::kNorm, {4});
  store->Add("lm_head", ParamKind::kHead, {8, 4});
}

OptimConfig MuonConfigWithDecay(float weight_decay) {
  OptimConfig config;
  config.set_lr(3e-3f);
  config.set_weight_decay(weight_decay);
  config.set_matrix_optimizer(MUON);
  return config;
}

TEST(GlobMatchTest, StarMatchesAnyRunOfCharactersAndTheWholeNameMustMatch) {
  EXPECT_TRUE(GlobMatch("lm_head", "lm_head"));
  EXPECT_FALSE(GlobMatch("lm_head", "lm_head2"));
  EXPECT_FALSE(GlobMatch("lm_hea", "lm_head"));
  EXPECT_TRUE(GlobMatch("*", ""));
  EXPECT_TRUE(GlobMatch("*", "layers.0.attn.wq"));
  EXPECT_TRUE(GlobMatch("layers.*.attn.wq", "layers.11.attn.wq"));
  EXPECT_FALSE(GlobMatch("layers.*.attn.wq", "layers.11.attn.wk"));
  EXPECT_TRUE(GlobMatch("*.attn.*", "layers.3.attn.wo"));
  EXPECT_TRUE(GlobMatch("*norm", "layers.0.attn_norm"));
  EXPECT_TRUE(GlobMatch("*norm", "norm"));
  EXPECT_FALSE(GlobMatch("*norm", "layers.0.attn_norm.g"));
  EXPECT_TRUE(GlobMatch("a*b*c", "aXbYbZc"));   // needs backtracking over the first b
  EXPECT_FALSE(GlobMatch("a*b*c", "aXbYbZ"));
  EXPECT_TRUE(GlobMatch("**x", "x"));
  EXPECT_FALSE(GlobMatch("", "x"));
}

TEST(ParamGroupsTest, MuonTakesTheHiddenMatricesAndAdamWEverythingElse) {
  ParameterStore store;
  AddTwoBlocks(&store);
  const std::vector<ParamGroup> groups = Route(store.all(), MuonConfigWithDecay(0.1f));
  ASSERT_EQ(groups.size(), 3u);
  EXPECT_EQ(groups[0].name, "adamw_decay0.1");
  EXPECT_EQ(Names(groups[0]), (std::vector<std::string>{"lm_head"}));
  EXPECT_FLOAT_EQ(groups[0].lr, 3e-3f);
  EXPECT_EQ(groups[1].name, "adamw_decay0");
  EXPECT_EQ(Names(groups[1]), (std::vector<std::string>{"embed", "layers.0.attn_norm",
                                                         "layers.1.attn_norm", "norm"}));
  EXPECT_EQ(groups[2].optimizer, MUON);
  EXPECT_EQ(groups[2].name, "muon_decay0.1");
  EXPECT_EQ(Names(groups[2]),
            (std::vector<std::string>{"layers.0.attn.wq", "layers.0.attn.wo",
                                      "layers.0.mlp.w_up", "layers.1.attn.wq",
                                      "layers.1.attn.wo", "layers.1.mlp.w_up"}));
  EXPECT_FLOAT_EQ(groups[2].lr, 0.02f);  // ORIGINAL scaling, muon.lr unset
  EXPECT_FLOAT_EQ(groups[2].weight_decay, 0.1f);
}

TEST(ParamGroupsTest, MuonLearningRateAndDecayFollowTheirFallbacks) {
  OptimConfig config = MuonConfigWithDecay(0.1f);
  EXPECT_FLOAT_EQ(MuonLearningRate(config), 0.02f);
  config.mutable_muon()->set_scaling(MuonConfig::MOONSHOT);
  EXPECT_FLOAT_EQ(MuonLearningRate(config), 3e-3f);  // shares optim.lr
  config.mutable_muon()->set_lr(0.05f);
  EXPECT_FLOAT_EQ(MuonLearningRate(config), 0.05f);
  EXPECT_FLOAT_EQ(MuonWeightDecay(config), 0.1f);
  config.mutable_muon()->set_weight_decay(0.0f);
  EXPECT_FLOAT_EQ(MuonWeightDecay(config), 0.0f);

  ParameterStore store;
  AddTwoBlocks(&store);
  const std::vector<ParamGroup> groups = Route(store.all(), config);
  ASSERT_EQ(groups.size(), 3u);
  EXPECT_EQ(groups[2].name, "muon_decay0");
  EXPECT_FLOAT_EQ(groups[2].lr, 0.05f);
  EXPECT_FLOAT_EQ(groups[0].lr, 3e-3f);  // AdamW keeps optim.lr
}

TEST(ParamGroupsTest, OverridesMoveParametersByGlobAndTheLastMatchWins) {
  OptimConfig config = MuonConfigWithDecay(0.1f);
  ParamOverride* all_attention = config.add_param_override();
  all_attention->set_name("layers.*.attn.*");
  all_attention->set_optimizer(ADAMW);
  ParamOverride* one_query = config.add_param_override();  // later: wins for layers.1.attn.wq
  one_query->set_name("layers.1.attn.wq");
  one_query->set_optimizer(MUON);
  one_query->set_weight_decay(0.05f);
  ParamOverride* head = config.add_param_override();
  head->set_name("lm_head");
  head->set_optimizer(MUON);
  ParameterStore store;
  AddTwoBlocks(&store);
  const std::vector<ParamGroup> groups = Route(store.all(), config);
  ASSERT_EQ(groups.size(), 4u);
  EXPECT_EQ(groups[0].name, "adamw_decay0.1");
  EXPECT_EQ(Names(groups[0]), (std::vector<std::string>{"layers.0.attn.wq", "layers.0.attn.wo",
                                                         "layers.1.attn.wo"}));
  EXPECT_EQ(groups[1].name, "adamw_decay0");
  EXPECT_EQ(groups[2].name, "muon_decay0.1");
  EXPECT_EQ(Names(groups[2]), (std::vector<std::string>{"layers.0.mlp.w_up",
                                                         "layers.1.mlp.w_up", "lm_head"}));
  EXPECT_EQ(groups[3].name, "muon_decay0.05");
  EXPECT_EQ(Names(groups[3]), (std::vector<std::string>{"layers.1.attn.wq"}));
  EXPECT_FLOAT_EQ(groups[3].weight_decay, 0.05f);
  EXPECT_FLOAT_EQ(groups[3].lr, 0.02f);
}

TEST(ParamGroupsTest, OverrideSetsTheDecayOfAnAdamWParameter) {
  OptimConfig config;
  config.set_weight_decay(0.1f);
  ParamOverride* embed = config.add_param_override();
  embed->set_name("embed");
  embed->set_weight_decay(0.01f);  // optimizer defaults to ADAMW
  ParamOverride* head = config.add_param_override();
  head->set_name("lm_head");
  head->set_weight_decay(0.0f);
  ParameterStore store;
  AddOneOfEachKind(&store);
  const std::vector<ParamGroup> groups = Route(store.all(), config);
  ASSERT_EQ(groups.size(), 3u);
  EXPECT_EQ(Names(groups[0]), (std::vector<std::string>{"layers.0.attn.wq"}));
  EXPECT_EQ(groups[1].name, "adamw_decay0.01");
  EXPECT_EQ(Names(groups[1]), (std::vector<std::string>{"embed"}));
  EXPECT_EQ(groups[2].name, "adamw_decay0");
  EXPECT_EQ(Names(groups[2]), (std::vector<std::string>{"layers.0.attn_norm", "layers.0.attn.bq",
                                                         "norm", "lm_head"}));
}

TEST(ParamGroupsTest, MuonForAVectorIsRefusedNamingTheParameterAndTheOverride) {
  OptimConfig config = MuonConfigWithDecay(0.1f);
  ParamOverride* norms = config.add_param_override();
  norms->set_name("*norm");
  norms->set_optimizer(MUON);
  ParameterStore store;
  AddTwoBlocks(&store);
  const absl::StatusOr<std::vector<ParamGroup>> groups = RouteParamGroups(store.all(), config);
  ASSERT_EQ(groups.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(groups.status().message(),
            "optim.param_override[0] (name: \"*norm\") sends parameter 'layers.0.attn_norm' "
            "[4] to Muon, which updates 2-D matrices only; send it to ADAMW with a "
            "param_override");
}

TEST(ParamGroupsTest, HiddenMatrixThatIsNot2DIsRefusedNamingMatrixOptimizer) {
  ParameterStore store;
  store.Add("layers.0.moe.experts", ParamKind::kMatrix, {2, 4, 4});
  const absl::StatusOr<std::vector<ParamGroup>> groups =
      RouteParamGroups(store.all(), MuonConfigWithDecay(0.1f));
  ASSERT_EQ(groups.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StartsWith(groups.status().message(),
                               "optim.matrix_optimizer=MUON sends parameter "
                               "'layers.0.moe.experts' [2, 4, 4] to Muon"));
  // Sent back to AdamW by an override, it is accepted.
  OptimConfig config = MuonConfigWithDecay(0.1f);
  config.add_param_override()->set_name("*.moe.*");
  EXPECT_TRUE(RouteParamGroups(store.all(), config).ok());
}

TEST(ParamGroupsTest, DescriptionNamesTheMuonGroupWithItsLearningRate) {
  ParameterStore store;
  store.Add("layers.0.attn.wq", ParamKind::kMatrix, {4, 4});
  store.Add("norm", ParamKind::kNorm, {4});
  const std::vector<std::string> lines =
      DescribeParamGroups(Route(store.all(), MuonConfigWithDecay(0.1f)), 200);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0], "adamw lr=0.003 decay=0 (1 tensors, 4 values): norm [4]");
  EXPECT_EQ(lines[1], "muon lr=0.02 decay=0.1 (1 tensors, 16 values): layers.0.attn.wq [4, 4]");
}

}  // namespace
}  // namespace sinklab

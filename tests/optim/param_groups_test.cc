#include "optim/param_groups.h"

#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/optim/parameter_store.h"

namespace sinklab {
namespace {

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
  const std::vector<ParamGroup> groups = AssignParamGroups(store.all(), config);
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_EQ(groups[0].optimizer, OptimizerKind::kAdamW);
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
  const std::vector<ParamGroup> groups = AssignParamGroups(store.all(), OptimConfig());
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
      DescribeParamGroups(AssignParamGroups(store.all(), config), /*line_width=*/200);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0],
            "adamw decay=0.1 (2 tensors, 48 values): layers.0.attn.wq [4, 4], lm_head [8, 4]");
  EXPECT_EQ(lines[1],
            "adamw decay=0 (4 tensors, 44 values): embed [8, 4], layers.0.attn_norm [4], "
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
      DescribeParamGroups(AssignParamGroups(store.all(), OptimConfig()), width);
  ASSERT_GT(lines.size(), 1u);
  EXPECT_TRUE(absl::StartsWith(lines[0], "adamw decay=0.1 (48 tensors, 192 values):"));
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

}  // namespace
}  // namespace sinklab

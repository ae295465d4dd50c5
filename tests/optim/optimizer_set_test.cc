// OptimizerSet: routes parameters, steps each group with its own lr times the schedule's
// factor, exactly as the optimizers it owns would on their own; its state round-trips bit
// for bit; statistics describe the applied update.
#include "optim/optimizer_set.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/rng.h"
#include "gtest/gtest.h"
#include "tests/optim/parameter_store.h"

namespace sinklab {
namespace {

constexpr size_t kArenaBytes = size_t{1} << 20;

// A two-block model's worth of parameters with random masters.
void AddModel(ParameterStore* store) {
  store->Add("embed", ParamKind::kEmbedding, {16, 8});
  for (int layer = 0; layer < 2; ++layer) {
    const std::string prefix = absl::StrCat("layers.", layer, ".");
    store->Add(prefix + "attn_norm", ParamKind::kNorm, {8});
    store->Add(prefix + "attn.wq", ParamKind::kMatrix, {8, 8});
    store->Add(prefix + "mlp.w_up", ParamKind::kMatrix, {12, 8});
    store->Add(prefix + "mlp.w_down", ParamKind::kMatrix, {8, 12});
  }
  store->Add("norm", ParamKind::kNorm, {8});
  store->Add("lm_head", ParamKind::kHead, {16, 8});
  uint64_t stream = 0;
  for (Parameter* param : store->all()) {
    FillNormal(param->master.f32(), param->master.numel(), 0.0f, 0.2f, 41, stream++);
  }
}

void SetGrads(const ParameterStore& store, int step) {
  uint64_t stream = 0;
  for (Parameter* param : store.all()) {
    FillNormal(param->grad.f32(), param->grad.numel(), 0.0f, 1.0f, 42 + step, stream++);
  }
}

std::vector<float> AllMasters(const ParameterStore& store) {
  std::vector<float> values;
  for (const Parameter* param : store.all()) {
    const std::vector<float> v = ParameterStore::Values(param->master);
    values.insert(values.end(), v.begin(), v.end());
  }
  return values;
}

OptimConfig MuonOptimConfig() {
  OptimConfig config;
  config.set_lr(3e-3f);
  config.set_weight_decay(0.1f);
  config.set_matrix_optimizer(MUON);
  config.mutable_muon()->set_lr(0.02f);
  config.mutable_muon()->set_weight_decay(0.05f);
  return config;
}

std::unique_ptr<OptimizerSet> MustCreate(const OptimConfig& config, const ParameterStore& store,
                                         Arena* arena) {
  absl::StatusOr<std::unique_ptr<OptimizerSet>> set =
      OptimizerSet::Create(config, store.all(), arena);
  EXPECT_TRUE(set.ok()) << set.status();
  return set.ok() ? *std::move(set) : nullptr;
}

TEST(OptimizerSetTest, AdamWOnlyConfigIsPlainAdamWBitForBit) {
  OptimConfig config;
  config.set_lr(3e-3f);
  ParameterStore store_set, store_plain;
  AddModel(&store_set);
  AddModel(&store_plain);
  Arena arena_set(Device::kCpu, kArenaBytes), arena_plain(Device::kCpu, kArenaBytes);
  const std::unique_ptr<OptimizerSet> set = MustCreate(config, store_set, &arena_set);
  ASSERT_NE(set, nullptr);
  EXPECT_EQ(set->muon(), nullptr);
  AdamW plain(config, store_plain.all(), &arena_plain);
  const float factors[3] = {0.5f, 1.0f, 0.25f};
  for (int t = 1; t <= 3; ++t) {
    SetGrads(store_set, t);
    SetGrads(store_plain, t);
    set->Step(factors[t - 1], t);
    plain.Step(config.lr() * factors[t - 1], t);
  }
  EXPECT_EQ(AllMasters(store_set), AllMasters(store_plain));
  EXPECT_EQ(set->step(), 3);
}

TEST(OptimizerSetTest, EachRuleStepsItsGroupsWithItsOwnLrAndDecays) {
  // The set equals an AdamW over the AdamW groups (lr 3e-3, decay 0.1 for the head, 0 for
  // vectors and the embedding) plus a Muon over the matrices (lr 0.02, decay 0.05).
  const OptimConfig config = MuonOptimConfig();
  ParameterStore store_set, store_plain;
  AddModel(&store_set);
  AddModel(&store_plain);
  Arena arena_set(Device::kCpu, kArenaBytes), arena_plain(Device::kCpu, kArenaBytes);
  const std::unique_ptr<OptimizerSet> set = MustCreate(config, store_set, &arena_set);
  ASSERT_NE(set, nullptr);
  ASSERT_NE(set->adamw(), nullptr);
  ASSERT_NE(set->muon(), nullptr);
  std::vector<Parameter*> adamw_params, muon_params;
  std::vector<float> adamw_decays;
  for (Parameter* param : store_plain.all()) {
    if (param->kind == ParamKind::kMatrix) {
      muon_params.push_back(param);
    } else {
      adamw_params.push_back(param);
    }
  }
  // Group order inside the set: the decayed AdamW group (lm_head) first.
  std::stable_partition(adamw_params.begin(), adamw_params.end(),
                        [](const Parameter* p) { return p->kind == ParamKind::kHead; });
  for (const Parameter* param : adamw_params) {
    adamw_decays.push_back(param->kind == ParamKind::kHead ? 0.1f : 0.0f);
  }
  AdamW adamw(config, adamw_params, adamw_decays, &arena_plain);
  Muon muon(config.muon(), muon_params, std::vector<float>(muon_params.size(), 0.05f),
            &arena_plain);
  for (int t = 1; t <= 3; ++t) {
    SetGrads(store_set, t);
    SetGrads(store_plain, t);
    const float factor = 1.0f / t;
    set->Step(factor, t);
    adamw.Step(3e-3f * factor, t);
    muon.Step(0.02f * factor, t);
  }
  EXPECT_EQ(AllMasters(store_set), AllMasters(store_plain));
}

TEST(OptimizerSetTest, StateRoundTripContinuesBitForBit) {
  // A checkpoint's view: masters, every state tensor by name and the step, into a fresh set.
  const OptimConfig config = MuonOptimConfig();
  ParameterStore store_a, store_b;
  AddModel(&store_a);
  AddModel(&store_b);
  Arena arena_a(Device::kCpu, kArenaBytes), arena_b(Device::kCpu, kArenaBytes);
  const std::unique_ptr<OptimizerSet> set_a = MustCreate(config, store_a, &arena_a);
  const std::unique_ptr<OptimizerSet> set_b = MustCreate(config, store_b, &arena_b);
  ASSERT_TRUE(set_a != nullptr && set_b != nullptr);
  for (int t = 1; t <= 3; ++t) {
    SetGrads(store_a, t);
    set_a->Step(0.8f, t);
  }
  for (size_t i = 0; i < store_a.all().size(); ++i) {
    const Tensor& from = store_a.all()[i]->master;
    std::copy(from.f32(), from.f32() + from.numel(), store_b.all()[i]->master.f32());
  }
  std::map<std::string, Tensor> saved;
  for (const StateTensor& state : set_a->StateTensors()) {
    EXPECT_TRUE(saved.emplace(state.name, state.tensor).second) << state.name;
  }
  const std::vector<StateTensor> restored = set_b->StateTensors();
  ASSERT_EQ(restored.size(), saved.size());
  for (const StateTensor& state : restored) {
    ASSERT_EQ(saved.count(state.name), 1u) << state.name;
    const Tensor& from = saved[state.name];
    ASSERT_EQ(from.numel(), state.tensor.numel());
    std::copy(from.f32(), from.f32() + from.numel(), state.tensor.f32());
  }
  set_b->set_step(set_a->step());
  EXPECT_EQ(set_b->muon()->step(), 3);
  for (int t = 4; t <= 5; ++t) {
    SetGrads(store_a, t);
    SetGrads(store_b, t);
    set_a->Step(0.5f, set_a->step() + 1);
    set_b->Step(0.5f, set_b->step() + 1);
  }
  EXPECT_EQ(AllMasters(store_a), AllMasters(store_b));
}

TEST(OptimizerSetTest, StateTensorsListAdamWThenMuon) {
  ParameterStore store;
  store.Add("layers.0.attn.wq", ParamKind::kMatrix, {4, 4});
  store.Add("norm", ParamKind::kNorm, {4});
  Arena arena(Device::kCpu, kArenaBytes);
  const std::unique_ptr<OptimizerSet> set = MustCreate(MuonOptimConfig(), store, &arena);
  ASSERT_NE(set, nullptr);
  std::vector<std::string> names;
  for (const StateTensor& state : set->StateTensors()) names.push_back(state.name);
  EXPECT_EQ(names, (std::vector<std::string>{"adamw.m.norm", "adamw.v.norm",
                                             "muon.m.layers.0.attn.wq"}));
  const std::vector<std::string> lines = set->Describe(200);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[1], "muon lr=0.02 decay=0.05 (1 tensors, 16 values): layers.0.attn.wq [4, 4]");
}

TEST(OptimizerSetTest, UpdateStatsAreRecordedOnlyWhenAskedAndMeasureTheAppliedUpdate) {
  OptimConfig config = MuonOptimConfig();
  config.mutable_muon()->set_scaling(MuonConfig::MOONSHOT);
  config.mutable_muon()->set_weight_decay(0.0f);
  ParameterStore store;
  AddModel(&store);
  Arena arena(Device::kCpu, kArenaBytes);
  const std::unique_ptr<OptimizerSet> set = MustCreate(config, store, &arena);
  ASSERT_NE(set, nullptr);
  SetGrads(store, 1);
  set->Step(1.0f, 1);
  EXPECT_TRUE(set->LastUpdateStats().empty());

  const std::vector<float> before = AllMasters(store);
  set->set_record_stats(true);
  SetGrads(store, 2);
  set->Step(1.0f, 2);
  const std::map<std::string, double> stats = set->LastUpdateStats();
  std::vector<std::string> keys;
  for (const auto& entry : stats) keys.push_back(entry.first);
  EXPECT_EQ(keys, (std::vector<std::string>{
                      "muon_sigma_max/layers.0.attn.wq", "muon_sigma_max/layers.0.mlp.w_down",
                      "muon_sigma_max/layers.0.mlp.w_up", "muon_sigma_max/layers.1.attn.wq",
                      "muon_sigma_max/layers.1.mlp.w_down", "muon_sigma_max/layers.1.mlp.w_up",
                      "update_rms/adamw_decay0", "update_rms/adamw_decay0.1",
                      "update_rms/muon_decay0"}));
  // update_rms recomputed from the masters, group by group.
  const std::vector<float> after = AllMasters(store);
  for (const ParamGroup& group : set->groups()) {
    double sum = 0;
    int64_t count = 0;
    for (const Parameter* param : group.params) {
      size_t offset = 0;  // where param sits in AllMasters
      for (const Parameter* p : store.all()) {
        if (p == param) break;
        offset += p->master.numel();
      }
      for (int64_t i = 0; i < param->master.numel(); ++i) {
        const double delta = static_cast<double>(after[offset + i]) - before[offset + i];
        sum += delta * delta;
      }
      count += param->master.numel();
    }
    EXPECT_NEAR(stats.at("update_rms/" + group.name), std::sqrt(sum / count), 1e-9)
        << group.name;
  }
  // Moonshot scaling makes Muon's update RMS 0.2 lr times the RMS of X's singular values,
  // which lie in the Newton-Schulz band (tests/optim/newton_schulz_test.cc).
  const double muon_rms = stats.at("update_rms/muon_decay0");
  EXPECT_GT(muon_rms, 0.66 * 0.2 * 0.02);
  EXPECT_LT(muon_rms, 1.22 * 0.2 * 0.02);
  for (const auto& entry : stats) {
    if (entry.first.rfind("muon_sigma_max/", 0) != 0) continue;
    EXPECT_GT(entry.second, 0.66) << entry.first;
    EXPECT_LT(entry.second, 1.22) << entry.first;
  }

  set->set_record_stats(false);
  set->Step(1.0f, 3);
  EXPECT_TRUE(set->LastUpdateStats().empty());
}

TEST(OptimizerSetTest, CreateReportsRoutingErrors) {
  OptimConfig config = MuonOptimConfig();
  ParamOverride* bad = config.add_param_override();
  bad->set_name("norm");
  bad->set_optimizer(MUON);
  ParameterStore store;
  AddModel(&store);
  Arena arena(Device::kCpu, kArenaBytes);
  const absl::StatusOr<std::unique_ptr<OptimizerSet>> set =
      OptimizerSet::Create(config, store.all(), &arena);
  EXPECT_EQ(set.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(set.status().message().find("'norm' [8] to Muon"), std::string::npos)
      << set.status();
}

}  // namespace
}  // namespace sinklab

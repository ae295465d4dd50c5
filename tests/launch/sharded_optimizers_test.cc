// ZeRO-1 AdamW (optim/sharded_adamw.h) and distributed Muon (optim/distributed_muon.h) on a
// world of one: they must do exactly what AdamW and Muon do, bit for bit, and move their
// state to and from full-size tensors losslessly. Their multi-rank behaviour is tested under
// mpirun (tests/dist/data_parallel_test.cc).
#include <memory>
#include <vector>

#include "core/comm.h"
#include "core/rng.h"
#include "gtest/gtest.h"
#include "optim/adamw.h"
#include "optim/distributed_muon.h"
#include "optim/muon.h"
#include "optim/sharded_adamw.h"
#include "tests/optim/parameter_store.h"

namespace sinklab {
namespace {

// Normal(0, scale) values from Philox stream `stream`.
std::vector<float> RandomValues(int64_t n, uint64_t stream, float scale) {
  Rng rng(/*seed=*/7, stream);
  std::vector<float> values(n);
  for (float& v : values) v = scale * rng.Normal();
  return values;
}

// Two identical parameter sets: a matrix, a vector and an embedding-like table.
struct TwinParams {
  ParameterStore a, b;
  TwinParams() {
    for (ParameterStore* store : {&a, &b}) {
      store->Add("w", ParamKind::kMatrix, {6, 5});
      store->Add("norm", ParamKind::kNorm, {7});
      store->Add("embed", ParamKind::kEmbedding, {4, 3});
    }
    for (size_t i = 0; i < a.all().size(); ++i) {
      const std::vector<float> init = RandomValues(a.all()[i]->master.numel(), i, 0.5f);
      ParameterStore::Fill(a.all()[i]->master, init);
      ParameterStore::Fill(b.all()[i]->master, init);
    }
  }
  // The same random gradient in both sets, different per step.
  void SetGrads(int step) {
    for (size_t i = 0; i < a.all().size(); ++i) {
      const std::vector<float> grad = RandomValues(a.all()[i]->grad.numel(), 100 * step + i, 1.0f);
      ParameterStore::Fill(a.all()[i]->grad, grad);
      ParameterStore::Fill(b.all()[i]->grad, grad);
    }
  }
};

OptimConfig AdamWConfig() {
  OptimConfig config;
  config.set_lr(0.01f);
  config.set_weight_decay(0.1f);
  return config;
}

TEST(ShardedAdamWTest, OnOneRankEqualsAdamWBitForBit) {
  TwinParams twins;
  const std::unique_ptr<Communicator> comm = MakeSingleProcessCommunicator();
  Arena arena;
  const std::vector<float> decays = {0.1f, 0.0f, 0.05f};
  AdamW plain(AdamWConfig(), twins.a.all(), decays, &arena);
  // A chunk of 7 values: the 49 values go through the collectives in 7 rounds.
  ShardedAdamW sharded(AdamWConfig(), twins.b.all(), decays, comm.get(), 7, &arena);
  EXPECT_EQ(sharded.total(), 30 + 7 + 12);
  EXPECT_EQ(sharded.shard_size(), 49);
  for (int step = 1; step <= 3; ++step) {
    twins.SetGrads(step);
    plain.Step(0.01f, step);
    sharded.ReduceScatterGrads();
    sharded.Step(0.01f, step);
    sharded.AllGatherParams();
    for (size_t i = 0; i < 3; ++i) {
      EXPECT_EQ(ParameterStore::Values(twins.a.all()[i]->master),
                ParameterStore::Values(twins.b.all()[i]->master))
          << twins.a.all()[i]->name << " step " << step;
    }
  }
  EXPECT_EQ(sharded.step(), 3);
}

TEST(ShardedAdamWTest, StateGathersToFullTensorsAndScattersBack) {
  TwinParams twins;
  const std::unique_ptr<Communicator> comm = MakeSingleProcessCommunicator();
  Arena arena;
  const std::vector<float> decays = {0.1f, 0.0f, 0.0f};
  AdamW plain(AdamWConfig(), twins.a.all(), decays, &arena);
  ShardedAdamW sharded(AdamWConfig(), twins.b.all(), decays, comm.get(), 5, &arena);
  for (int step = 1; step <= 2; ++step) {
    twins.SetGrads(step);
    plain.Step(0.01f, step);
    sharded.ReduceScatterGrads();
    sharded.Step(0.01f, step);
    sharded.AllGatherParams();
  }
  // Gathered state = AdamW's, tensor by tensor (m, v per parameter).
  ParameterStore full;
  std::vector<Tensor> m, v;
  for (const Parameter* param : twins.b.all()) {
    m.push_back(full.Add("m." + param->name, param->kind, {param->master.numel()})->master);
    v.push_back(full.Add("v." + param->name, param->kind, {param->master.numel()})->master);
  }
  sharded.GatherState(m, v);
  const std::vector<StateTensor> state = plain.StateTensors();
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(ParameterStore::Values(m[i]), ParameterStore::Values(state[2 * i].tensor));
    EXPECT_EQ(ParameterStore::Values(v[i]), ParameterStore::Values(state[2 * i + 1].tensor));
  }
  // A fresh sharded optimizer given that state continues exactly like AdamW.
  ShardedAdamW restored(AdamWConfig(), twins.b.all(), decays, comm.get(), 5, &arena);
  restored.ScatterState(m, v);
  restored.set_step(2);
  twins.SetGrads(3);
  plain.Step(0.01f, 3);
  restored.ReduceScatterGrads();
  restored.Step(0.01f, 3);
  restored.AllGatherParams();
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(ParameterStore::Values(twins.a.all()[i]->master),
              ParameterStore::Values(twins.b.all()[i]->master));
  }
}

TEST(DistributedMuonTest, AssignmentBalancesSizesLargestFirst) {
  // 300 -> rank 0 (0 | 0), 200 -> rank 1 (300 | 0), 100 -> rank 1 (300 | 200),
  // 50 -> rank 0 (300 | 300: a tie goes to the lowest rank).
  EXPECT_EQ(AssignMatricesToRanks({100, 300, 200, 50}, 2), (std::vector<int>{1, 0, 1, 0}));
  // Equal sizes go round-robin in parameter order; a third rank may own nothing.
  EXPECT_EQ(AssignMatricesToRanks({64, 64}, 3), (std::vector<int>{0, 1}));
  EXPECT_EQ(AssignMatricesToRanks({64, 64, 64, 64}, 2), (std::vector<int>{0, 1, 0, 1}));
  EXPECT_EQ(AssignMatricesToRanks({5, 9}, 1), (std::vector<int>{0, 0}));
}

TEST(DistributedMuonTest, OnOneRankEqualsMuonBitForBitAndKeepsItsMomentum) {
  ParameterStore a, b;
  for (ParameterStore* store : {&a, &b}) {
    store->Add("wq", ParamKind::kMatrix, {8, 6});
    store->Add("w_up", ParamKind::kMatrix, {5, 8});
  }
  for (size_t i = 0; i < 2; ++i) {
    const std::vector<float> init = RandomValues(a.all()[i]->master.numel(), 50 + i, 0.2f);
    ParameterStore::Fill(a.all()[i]->master, init);
    ParameterStore::Fill(b.all()[i]->master, init);
  }
  const std::unique_ptr<Communicator> comm = MakeSingleProcessCommunicator();
  Arena arena;
  MuonConfig config;
  Muon plain(config, a.all(), {0.1f, 0.0f}, &arena);
  DistributedMuon distributed(config, b.all(), {0.1f, 0.0f}, comm.get(), &arena);
  EXPECT_EQ(distributed.owned_count(), 2);
  for (int step = 1; step <= 2; ++step) {
    for (size_t i = 0; i < 2; ++i) {
      const std::vector<float> grad =
          RandomValues(a.all()[i]->grad.numel(), 60 + 10 * step + i, 1.0f);
      ParameterStore::Fill(a.all()[i]->grad, grad);
      ParameterStore::Fill(b.all()[i]->grad, grad);
    }
    plain.Step(0.02f, step);
    distributed.Step(0.02f, step);
    for (size_t i = 0; i < 2; ++i) {
      EXPECT_EQ(ParameterStore::Values(a.all()[i]->master),
                ParameterStore::Values(b.all()[i]->master));
    }
  }
  ParameterStore full;
  std::vector<Tensor> m = {full.Add("m0", ParamKind::kMatrix, {8, 6})->master,
                           full.Add("m1", ParamKind::kMatrix, {5, 8})->master};
  distributed.GatherMomentum(m);
  const std::vector<StateTensor> state = plain.StateTensors();
  EXPECT_EQ(ParameterStore::Values(m[0]), ParameterStore::Values(state[0].tensor));
  EXPECT_EQ(ParameterStore::Values(m[1]), ParameterStore::Values(state[1].tensor));
}

}  // namespace
}  // namespace sinklab

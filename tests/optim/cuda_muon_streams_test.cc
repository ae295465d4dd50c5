// The GPU optimizer step's concurrency and Muon's data-parallel split
// (optim/cuda/multi_tensor_gpu.h):
//  - OptimizerSet::Step runs AdamW on a side stream beside Muon (whose momentum runs on its
//    own side stream ahead of the Newton-Schulz products, and its updates on another): the
//    result must equal, bit for bit, AdamW and Muon run one after the other with the device
//    synchronized in between (the same kernels on disjoint buffers; only the ordering across
//    them changes). A race inside Muon's pipeline would also break the CPU comparisons of
//    cuda_multi_tensor_test.cc (an unnormalized or half-written batch moves X by O(1)).
//  - Muon sharded over 2 and 3 "ranks" on one GPU (one Muon per rank on its own copy of the
//    same parameters, each Step on its own host thread, a test all-gather that copies every
//    rank's slice into every rank's batch): every rank ends with the same parameters, bit for
//    bit; the momentum equals the one-rank run's bit for bit (it does not depend on the
//    orthogonalization); the updates equal the one-rank run's within bf16 noise, because a
//    slice runs the strided-batched products with a smaller batch count, for which cuBLASLt
//    may pick another algorithm (another accumulation order in the bf16 products).
#if SINKLAB_WITH_CUDA

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "configs/sinklab.pb.h"
#include "core/arena.h"
#include "core/cuda_check.h"
#include "core/rng.h"
#include "gtest/gtest.h"
#include "optim/adamw.h"
#include "optim/muon.h"
#include "optim/optimizer_set.h"
#include "optim/param_groups.h"
#include "tests/layers/cuda_test_util.h"

namespace sinklab {
namespace {

std::vector<float> Random(int64_t n, uint64_t stream, float std) {
  std::vector<float> v(n);
  FillNormal(v.data(), n, 0.0f, std, /*seed=*/777, stream);
  return v;
}

struct Shape {
  std::string name;
  ParamKind kind;
  int64_t rows, cols;  // cols 0: a vector of `rows`
};

// One copy of the parameters on the GPU (fp32 master and grad, bf16 compute), initialized
// from fixed seeds, so every copy starts equal.
struct GpuParams {
  Arena arena{Device::kCuda, size_t{64} << 20};
  std::deque<Parameter> store;
  std::vector<Parameter*> params;

  explicit GpuParams(const std::vector<Shape>& shapes) {
    for (const Shape& shape : shapes) {
      Parameter& p = store.emplace_back();
      p.name = shape.name;
      p.kind = shape.kind;
      if (shape.cols == 0) {
        p.master = arena.Allocate(DType::kF32, {shape.rows});
        p.grad = arena.Allocate(DType::kF32, {shape.rows});
        p.compute = arena.Allocate(DType::kBF16, {shape.rows});
      } else {
        p.master = arena.Allocate(DType::kF32, {shape.rows, shape.cols});
        p.grad = arena.Allocate(DType::kF32, {shape.rows, shape.cols});
        p.compute = arena.Allocate(DType::kBF16, {shape.rows, shape.cols});
      }
      const std::vector<float> init = Random(p.master.numel(), 100 + params.size(), 0.1f);
      CopyTensorFromHost(p.master, init.data());
      params.push_back(&p);
    }
  }
  // Step `step`'s gradients: the same on every copy, never zero.
  void SetGrads(int step) {
    for (size_t i = 0; i < params.size(); ++i) {
      const std::vector<float> g = Random(params[i]->grad.numel(), step * 1000 + i, 1.0f);
      CopyTensorFromHost(params[i]->grad, g.data());
    }
  }
  std::vector<Parameter*> Select(const std::vector<Parameter*>& like) const {
    std::vector<Parameter*> out;
    for (const Parameter* want : like) {
      for (Parameter* p : params) {
        if (p->name == want->name) out.push_back(p);
      }
    }
    return out;
  }
};

std::vector<Shape> MixedShapes() {
  return {{"embed", ParamKind::kEmbedding, 300, 64},
          {"layers.0.attn.wq", ParamKind::kMatrix, 64, 64},
          {"layers.0.attn.wo", ParamKind::kMatrix, 64, 64},
          {"layers.0.mlp.w_gate", ParamKind::kMatrix, 160, 64},  // tall, group [64, 160]
          {"layers.0.mlp.w_down", ParamKind::kMatrix, 64, 160},
          {"layers.0.odd", ParamKind::kMatrix, 37, 71},  // numel % 8 != 0: scalar scaling
          {"layers.0.mlp_norm", ParamKind::kNorm, 64, 0},
          {"layers.1.attn.wq", ParamKind::kMatrix, 64, 64},
          {"norm", ParamKind::kNorm, 70001, 0},
          {"lm_head", ParamKind::kHead, 300, 64}};
}

void ExpectSameDeviceValues(const std::vector<Parameter*>& got, const std::vector<Parameter*>& want,
                            const std::string& what) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(DeviceValues(got[i]->master), DeviceValues(want[i]->master))
        << what << ": master of " << got[i]->name;
    EXPECT_EQ(DeviceValues(got[i]->compute), DeviceValues(want[i]->compute))
        << what << ": compute copy of " << got[i]->name;
  }
}

void ExpectSameState(const std::vector<StateTensor>& got, const std::vector<StateTensor>& want,
                     const std::string& what) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].name, want[i].name);
    EXPECT_EQ(DeviceValues(got[i].tensor), DeviceValues(want[i].tensor))
        << what << ": " << got[i].name;
  }
}

TEST(CudaMuonStreamsTest, OverlappedOptimizerSetStepEqualsTheOptimizersOneByOne) {
  SL_SKIP_WITHOUT_CUDA();
  OptimConfig config;
  config.set_matrix_optimizer(MUON);
  config.set_weight_decay(0.1f);
  config.mutable_muon()->set_nesterov(true);
  GpuParams overlapped(MixedShapes()), sequential(MixedShapes());
  absl::StatusOr<std::unique_ptr<OptimizerSet>> set =
      OptimizerSet::Create(config, overlapped.params, &overlapped.arena);
  ASSERT_TRUE(set.ok()) << set.status();
  ASSERT_NE((*set)->adamw(), nullptr);
  ASSERT_NE((*set)->muon(), nullptr);
  // The same optimizers over the other copy, driven one at a time on the default stream.
  const AdamW& set_adamw = *(*set)->adamw();
  const Muon& set_muon = *(*set)->muon();
  std::vector<float> adamw_decays, muon_decays;
  for (size_t i = 0; i < set_adamw.params().size(); ++i) {
    adamw_decays.push_back(set_adamw.weight_decay(i));
  }
  for (size_t i = 0; i < set_muon.params().size(); ++i) {
    muon_decays.push_back(set_muon.weight_decay(i));
  }
  AdamW adamw(config, sequential.Select(set_adamw.params()), adamw_decays, &sequential.arena);
  Muon muon(config.muon(), sequential.Select(set_muon.params()), muon_decays, &sequential.arena);
  constexpr int kSteps = 3;
  for (int step = 1; step <= kSteps; ++step) {
    overlapped.SetGrads(step);
    sequential.SetGrads(step);
    const bool record = step == kSteps;
    (*set)->set_record_stats(record);
    adamw.set_record_stats(record);
    muon.set_record_stats(record);
    // No clipping (factor 1): the sequential side applies no device factor, and g * 1 == g.
    (*set)->ClipGradients(0.0f);
    const float factor = 0.5f + 0.1f * step;
    (*set)->Step(factor, step);
    adamw.Step(config.lr() * factor, step);
    SL_CUDA_CHECK(cudaDeviceSynchronize());
    muon.Step(MuonLearningRate(config) * factor, step);
    SL_CUDA_CHECK(cudaDeviceSynchronize());
  }
  ExpectSameDeviceValues(overlapped.params, sequential.params, "overlapped vs one by one");
  std::vector<StateTensor> sequential_state = adamw.StateTensors();
  for (StateTensor& t : muon.StateTensors()) sequential_state.push_back(std::move(t));
  ExpectSameState((*set)->StateTensors(), sequential_state, "overlapped vs one by one");
  EXPECT_EQ(set_adamw.last_update_sum_squares(), adamw.last_update_sum_squares());
  EXPECT_EQ(set_muon.last_update_sum_squares(), muon.last_update_sum_squares());
  EXPECT_EQ(set_muon.last_sigma_max(), muon.last_sigma_max());
  // The step moved every parameter (the comparison is not between two no-ops).
  const GpuParams initial(MixedShapes());
  for (size_t i = 0; i < initial.params.size(); ++i) {
    EXPECT_NE(DeviceValues(overlapped.params[i]->master), DeviceValues(initial.params[i]->master))
        << initial.params[i]->name;
  }
}

// An in-process all-gather for `world` ranks on host threads sharing the legacy default
// stream: each rank posts its send pointer, and once every rank has (so every rank's
// orthogonalization is queued on stream 0), copies every slice into its own batch on
// stream 0; no rank goes on until every rank has queued its copies (so no send buffer is
// overwritten by later work before it is read).
class ThreadAllGather {
 public:
  explicit ThreadAllGather(int world) : world_(world), sends_(world, nullptr) {}

  void AllGather(int rank, const void* send, void* recv, int64_t bytes) {
    sends_[rank] = send;
    Barrier();
    for (int q = 0; q < world_; ++q) {
      char* dst = static_cast<char*>(recv) + q * bytes;
      if (dst == sends_[q]) continue;  // in place
      SL_CUDA_CHECK(cudaMemcpyAsync(dst, sends_[q], bytes, cudaMemcpyDeviceToDevice, 0));
    }
    Barrier();
  }

 private:
  void Barrier() {
    std::unique_lock<std::mutex> lock(mutex_);
    const int64_t generation = generation_;
    if (++arrived_ == world_) {
      arrived_ = 0;
      ++generation_;
      changed_.notify_all();
    } else {
      changed_.wait(lock, [&] { return generation_ != generation; });
    }
  }

  const int world_;
  std::vector<const void*> sends_;
  std::mutex mutex_;
  std::condition_variable changed_;
  int arrived_ = 0;
  int64_t generation_ = 0;
};

std::vector<Shape> MuonShapes() {
  // Groups of 3 (a rank's slice can be short), 2 (one tall), and 1 (ranks with nothing).
  return {{"a0", ParamKind::kMatrix, 64, 64},  {"b0", ParamKind::kMatrix, 64, 160},
          {"a1", ParamKind::kMatrix, 64, 64},  {"odd", ParamKind::kMatrix, 37, 71},
          {"b1", ParamKind::kMatrix, 160, 64}, {"a2", ParamKind::kMatrix, 64, 64}};
}

void ExpectShardedMuonMatchesOneRank(int world) {
  MuonConfig config;
  config.set_nesterov(true);
  const std::vector<float> decays(MuonShapes().size(), 0.1f);
  constexpr int kSteps = 3;
  constexpr float kLr = 0.02f;
  GpuParams alone(MuonShapes());
  Muon single(config, alone.params, decays, &alone.arena);
  std::vector<std::unique_ptr<GpuParams>> ranks;
  std::vector<std::unique_ptr<Muon>> muons;
  ThreadAllGather exchange(world);
  for (int r = 0; r < world; ++r) {
    ranks.push_back(std::make_unique<GpuParams>(MuonShapes()));
    MuonSharding sharding;
    sharding.rank = r;
    sharding.world = world;
    sharding.all_gather = [&exchange, r](const void* send, void* recv, int64_t bytes) {
      exchange.AllGather(r, send, recv, bytes);
    };
    muons.push_back(std::make_unique<Muon>(config, ranks[r]->params, decays, &ranks[r]->arena,
                                           std::move(sharding)));
  }
  for (int step = 1; step <= kSteps; ++step) {
    const bool record = step == kSteps;
    alone.SetGrads(step);
    single.set_record_stats(record);
    single.Step(kLr, step);
    for (int r = 0; r < world; ++r) {
      ranks[r]->SetGrads(step);
      muons[r]->set_record_stats(record);
    }
    SL_CUDA_CHECK(cudaDeviceSynchronize());
    std::vector<std::thread> threads;
    for (int r = 0; r < world; ++r) {
      threads.emplace_back([&muons, r, step] { muons[r]->Step(kLr, step); });
    }
    for (std::thread& thread : threads) thread.join();
    SL_CUDA_CHECK(cudaDeviceSynchronize());
  }
  const std::string tag = "world " + std::to_string(world);
  for (int r = 1; r < world; ++r) {
    ExpectSameDeviceValues(ranks[r]->params, ranks[0]->params,
                           tag + ": rank " + std::to_string(r) + " vs rank 0");
    EXPECT_EQ(muons[r]->last_update_sum_squares(), muons[0]->last_update_sum_squares()) << tag;
    EXPECT_EQ(muons[r]->last_sigma_max(), muons[0]->last_sigma_max()) << tag;
  }
  ExpectSameState(muons[0]->StateTensors(), single.StateTensors(), tag + ": momentum");
  const GpuParams initial(MuonShapes());
  for (size_t i = 0; i < initial.params.size(); ++i) {
    std::vector<float> want = DeviceValues(alone.params[i]->master);
    std::vector<float> got = DeviceValues(ranks[0]->params[i]->master);
    const std::vector<float> before = DeviceValues(initial.params[i]->master);
    for (size_t j = 0; j < want.size(); ++j) {  // the updates, not the weights
      want[j] -= before[j];
      got[j] -= before[j];
    }
    EXPECT_LT(RelError(got, want), 5e-2) << tag << ": " << initial.params[i]->name;
    EXPECT_NEAR(muons[0]->last_sigma_max()[i], single.last_sigma_max()[i],
                0.05 * single.last_sigma_max()[i])
        << tag << ": " << initial.params[i]->name;
  }
}

TEST(CudaMuonStreamsTest, TwoRanksOnOneGpuMatchOneRank) {
  SL_SKIP_WITHOUT_CUDA();
  ExpectShardedMuonMatchesOneRank(2);
}

TEST(CudaMuonStreamsTest, ThreeRanksOnOneGpuMatchOneRank) {
  SL_SKIP_WITHOUT_CUDA();
  ExpectShardedMuonMatchesOneRank(3);
}

// One rank with an all-gather (what SINKLAB_FORCE_NCCL runs): the all-gather copies the
// whole batch, so the result is the unsharded one bit for bit.
TEST(CudaMuonStreamsTest, OneRankWithAnAllGatherEqualsNoSharding) {
  SL_SKIP_WITHOUT_CUDA();
  MuonConfig config;
  const std::vector<float> decays(MuonShapes().size(), 0.05f);
  GpuParams plain(MuonShapes()), gathered(MuonShapes());
  Muon a(config, plain.params, decays, &plain.arena);
  int calls = 0;
  MuonSharding sharding;
  sharding.all_gather = [&calls](const void* send, void* recv, int64_t bytes) {
    ++calls;
    if (send != recv) {
      SL_CUDA_CHECK(cudaMemcpyAsync(recv, send, bytes, cudaMemcpyDeviceToDevice, 0));
    }
  };
  Muon b(config, gathered.params, decays, &gathered.arena, std::move(sharding));
  for (int step = 1; step <= 2; ++step) {
    plain.SetGrads(step);
    gathered.SetGrads(step);
    a.Step(0.02f, step);
    b.Step(0.02f, step);
  }
  EXPECT_EQ(calls, 2 * 3);  // once per shape group and step
  ExpectSameDeviceValues(gathered.params, plain.params, "one rank with an all-gather");
}

}  // namespace
}  // namespace sinklab

#endif  // SINKLAB_WITH_CUDA

// GPU data parallelism through NCCL (dist_cuda_tests; ctest dist_CudaNccl_np1 runs it under
// mpirun -np 1, and it is written for any number of ranks with one GPU each):
//  - the NCCL communicator's collectives on device buffers, checked against sums computed
//    on the host from every rank's (reproducible) inputs, on the world and on a Split;
//  - a few training steps on the GPU through the NCCL bucket path (SINKLAB_FORCE_NCCL=1, so
//    one rank takes it too) against the single-process GPU run: the same losses and
//    gradient norms within GPU nondeterminism.
// Without a GPU (or a build without NCCL) every test is skipped.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "configs/config_loader.h"
#include "core/arena.h"
#include "core/comm.h"
#include "core/device.h"
#include "core/rng.h"
#include "gtest/gtest.h"
#include "launch/distributed.h"
#include "launch/trainer.h"
#include "tests/dist/mpi_env.h"
#include "tests/dist/run_outputs.h"
#if SINKLAB_WITH_NCCL
#include "core/comm_nccl.h"
#endif

namespace sinklab {
namespace {

#if SINKLAB_WITH_NCCL
constexpr bool kNcclBuilt = true;
#else
constexpr bool kNcclBuilt = false;
#endif

#define SL_SKIP_WITHOUT_NCCL_GPU()                                                   \
  do {                                                                               \
    if (!kNcclBuilt) GTEST_SKIP() << "built without NCCL (SINKLAB_NCCL=OFF)";         \
    if (!CudaAvailable()) GTEST_SKIP() << "no CUDA device visible";                   \
  } while (0)

// This rank's GPU, chosen as sinklab train chooses it (once per process).
void UseThisRanksGpu() {
  static const bool done = [] {
    CheckOkOrAbort(UseGpuOfLocalRank(Device::kCuda, World()).status());
    return true;
  }();
  (void)done;
}

#if SINKLAB_WITH_NCCL
// Rank q's input of `n` values: Normal(0, 1), Philox stream 100 + q (never zeros).
std::vector<float> RankInput(int q, int64_t n) {
  std::vector<float> x(static_cast<size_t>(n));
  FillNormal(x.data(), n, 0.0f, 1.0f, /*seed=*/20261123, /*stream=*/100 + q);
  return x;
}

Tensor Upload(Arena& arena, const std::vector<float>& host) {
  Tensor t = arena.Allocate(DType::kF32, {static_cast<int64_t>(host.size())});
  CopyTensorFromHost(t, host.data());
  return t;
}

std::vector<float> Download(const Tensor& t) {
  std::vector<float> host(static_cast<size_t>(t.numel()));
  CopyTensorToHost(host.data(), t);
  return host;
}

// |got - want| within fp32 rounding of a sum of `terms` values of size ~1.
void ExpectClose(const std::vector<float>& got, const std::vector<double>& want, int terms,
                 const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  int bad = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double tolerance = 1e-6 * terms * (1.0 + std::fabs(want[i]));
    if (std::fabs(got[i] - want[i]) > tolerance && ++bad <= 5) {
      ADD_FAILURE() << what << "[" << i << "]: got " << got[i] << ", want " << want[i];
    }
  }
  EXPECT_EQ(bad, 0) << what;
}
#endif

TEST(CudaNcclTest, CollectivesOnDeviceBuffersMatchHostSums) {
  SL_SKIP_WITHOUT_NCCL_GPU();
#if SINKLAB_WITH_NCCL
  UseThisRanksGpu();
  Communicator& world = World();
  const int n = world.world_size(), r = world.rank();
  std::unique_ptr<NcclCommunicator> nccl = NcclCommunicator::Create(&world, /*seconds=*/120);
  EXPECT_EQ(nccl->rank(), r);
  EXPECT_EQ(nccl->world_size(), n);
  const int64_t shard = 1031;  // odd: no size happens to be a multiple of anything
  Arena arena(Device::kCuda);
  std::vector<std::vector<float>> inputs;
  for (int q = 0; q < n; ++q) inputs.push_back(RankInput(q, shard * n));

  // AllReduceSum (fp32, in place).
  Tensor data = Upload(arena, inputs[r]);
  nccl->AllReduceSum(data.f32(), data.numel());
  std::vector<double> sum(static_cast<size_t>(shard * n), 0.0);
  for (int q = 0; q < n; ++q) {
    for (size_t i = 0; i < sum.size(); ++i) sum[i] += inputs[q][i];
  }
  ExpectClose(Download(data), sum, n, "AllReduceSum(float)");

  // AllReduceSum (fp64): the same values as doubles, compared after narrowing.
  std::vector<double> mine(inputs[r].begin(), inputs[r].end());
  Tensor doubles = arena.Allocate(DType::kF32, {2 * shard * n});  // 8 bytes per value
  double* device_doubles = static_cast<double*>(doubles.data());
  CopyTensorFromHost(doubles, mine.data());
  nccl->AllReduceSum(device_doubles, shard * n);
  std::vector<double> summed(mine.size());
  CopyTensorToHost(summed.data(), doubles);
  std::vector<float> narrowed(summed.begin(), summed.end());
  ExpectClose(narrowed, sum, n, "AllReduceSum(double)");

  // ReduceScatterSum: this rank gets shard r of the sum.
  Tensor send = Upload(arena, inputs[r]);
  Tensor recv = arena.Allocate(DType::kF32, {shard});
  nccl->ReduceScatterSum(send.f32(), recv.f32(), shard);
  ExpectClose(Download(recv),
              std::vector<double>(sum.begin() + r * shard, sum.begin() + (r + 1) * shard), n,
              "ReduceScatterSum");

  // AllGather: rank q's first shard at q * shard.
  Tensor gathered = arena.Allocate(DType::kF32, {shard * n});
  nccl->AllGather(send.f32(), gathered.f32(), shard);
  std::vector<double> concatenated;
  for (int q = 0; q < n; ++q) {
    concatenated.insert(concatenated.end(), inputs[q].begin(), inputs[q].begin() + shard);
  }
  ExpectClose(Download(gathered), concatenated, 1, "AllGather");

  // Broadcast from the last rank, of bytes.
  Tensor broadcast = Upload(arena, inputs[r]);
  nccl->Broadcast(broadcast.data(), broadcast.nbytes(), n - 1);
  ExpectClose(Download(broadcast),
              std::vector<double>(inputs[n - 1].begin(), inputs[n - 1].end()), 1, "Broadcast");
  nccl->Barrier();

  // Split into even and odd ranks: sums over this rank's part only.
  std::unique_ptr<Communicator> part = nccl->Split(r % 2);
  EXPECT_EQ(part->world_size(), (n - r % 2 + 1) / 2);
  Tensor part_data = Upload(arena, inputs[r]);
  part->AllReduceSum(part_data.f32(), part_data.numel());
  std::vector<double> part_sum(sum.size(), 0.0);
  int terms = 0;
  for (int q = r % 2; q < n; q += 2, ++terms) {
    for (size_t i = 0; i < part_sum.size(); ++i) part_sum[i] += inputs[q][i];
  }
  ExpectClose(Download(part_data), part_sum, terms, "Split(r % 2)->AllReduceSum");
  part.reset();
  nccl.reset();
  world.Barrier();
#endif
}

// 4 steps of 8 sequences x 32 tokens, micro-batch 2 (accumulation on one rank), several
// gradient buckets; every step's gradient norm in metrics.jsonl.
Config SmallConfig(const std::string& run_root, const std::string& extra) {
  absl::StatusOr<Config> config = LoadEmbeddedTinyConfig(
      {"train { steps: 4 batch_size: 8 micro_batch_size: 2 log_every: 1 eval_every: 4 "
       "eval_batches: 2 }",
       "data { seq_len: 32 } optim { warmup_steps: 2 } stats { every: 0 }",
       "checkpoint { every: 0 } distributed { bucket_mb: 0.05 }",
       absl::StrCat("train { run_root: '", run_root, "' }"), extra});
  CheckOkOrAbort(config.status());
  return *config;
}

// How closely the NCCL path must follow the single process (relative on losses and gradient
// norms, absolute on weights).
struct Tolerance {
  double loss = 2e-3;
  double later_norms = 2e-3;  // steps 2.. (step 1's norm, before any update: always 2e-3)
  float weights = 1e-4f;
};

// Rank 0: the single-process GPU run of `extra`, compared with the NCCL path's `nccl`.
// The micro-batches are the same (micro-batch 2 on every rank), so the runs differ only in
// the order the micro-batch gradients are summed (fp32 rounding; on one rank the all-reduce
// is a copy) and, through the updates, in a few bf16 roundings of the compute copies. The
// default tolerances are far under what a wrong gradient moves: a lost or doubled bucket
// changes the gradient norm of step 1 by that bucket's share, and an update of lr 3e-3 from
// a wrong gradient moves weights by ~1e-3.
void CompareWithSingleProcess(const std::string& tag, const std::string& extra,
                              const TrainOptions& options, const TrainResult& nccl,
                              const Tolerance& tolerance) {
  TrainOptions alone = options;
  alone.comm = nullptr;
  absl::StatusOr<TrainResult> single =
      Train(SmallConfig(LocalTestRoot(tag + "_single"), extra), alone);
  ASSERT_TRUE(single.ok()) << single.status();
  ASSERT_EQ(nccl.step_losses.size(), 4u);
  ASSERT_EQ(single->step_losses.size(), 4u);
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_NEAR(nccl.step_losses[i], single->step_losses[i],
                tolerance.loss * std::fabs(single->step_losses[i]))
        << "step " << i + 1;
  }
  const std::vector<double> nccl_norms = GradNorms(nccl.run_dir);
  const std::vector<double> single_norms = GradNorms(single->run_dir);
  ASSERT_EQ(nccl_norms.size(), 4u);
  ASSERT_EQ(single_norms.size(), 4u);
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_GT(single_norms[i], 0.0);
    const double relative = i == 0 ? 2e-3 : tolerance.later_norms;
    EXPECT_NEAR(nccl_norms[i], single_norms[i], relative * single_norms[i]) << "step " << i + 1;
  }
  // Training moved: the comparison is not between two runs that did nothing.
  EXPECT_LT(single->step_losses.back(), single->step_losses.front());
  const float diff = MaxWeightDifference(nccl.run_dir + "/model.safetensors",
                                         single->run_dir + "/model.safetensors");
  EXPECT_LE(diff, tolerance.weights);
  std::printf("[ %s ] NCCL path on %d rank(s) vs one process: final loss %.6f vs %.6f, grad "
              "norm %.6f vs %.6f (step 1: %.6f vs %.6f), max weight difference %.3g\n",
              tag.c_str(), World().world_size(), nccl.step_losses.back(),
              single->step_losses.back(), nccl_norms.back(), single_norms.back(), nccl_norms[0],
              single_norms[0], diff);
}

// Trains `extra` through the NCCL path on every rank, then alone on rank 0, and compares.
void ExpectNcclPathMatchesSingleProcess(const std::string& tag, const std::string& extra,
                                        const Tolerance& tolerance = Tolerance()) {
  UseThisRanksGpu();
  Communicator& world = World();
  setenv("SINKLAB_FORCE_NCCL", "1", /*overwrite=*/1);
  TrainOptions options;
  options.device = Device::kCuda;
  options.print_progress = false;
  options.comm = &world;
  absl::StatusOr<TrainResult> nccl =
      Train(SmallConfig(SharedTestRoot(tag + "_nccl"), extra), options);
  unsetenv("SINKLAB_FORCE_NCCL");
  CheckOkOrAbort(nccl.status());
  world.Barrier();
  if (world.rank() == 0) CompareWithSingleProcess(tag, extra, options, *nccl, tolerance);
  world.Barrier();
}

TEST(CudaNcclTest, TrainingThroughNcclMatchesSingleProcessAdamW) {
  SL_SKIP_WITHOUT_NCCL_GPU();
  ExpectNcclPathMatchesSingleProcess("adamw", "");
}

// Muon on several GPUs: each rank runs Newton-Schulz (bf16) on its half of a shape group's
// batch, the single process on the whole batch, and cuBLASLt picks its kernels per batch
// size, so X differs by bf16 roundings; the quintic iteration (a = 3.4445) multiplies
// differences along small singular values by up to a^5 ~ 480 over its 5 steps. On 2 H200
// that left step 4's norm 3.4e-3 and the weights 7.9e-3 apart (steps 1-3 within 2e-3); the
// looser bounds still catch a wrong reduction through step 1's norm and the losses.
// (CudaMuonStreamsTest checks the sharded orthogonalization itself on one GPU.)
Tolerance MuonAcrossRanks() {
  Tolerance tolerance;
  tolerance.later_norms = 1e-2;
  tolerance.weights = 2e-2f;
  return tolerance;
}

TEST(CudaNcclTest, TrainingThroughNcclMatchesSingleProcessMuon) {
  SL_SKIP_WITHOUT_NCCL_GPU();
  ExpectNcclPathMatchesSingleProcess(
      "muon", "optim { matrix_optimizer: MUON muon { lr: 0.02 } }", MuonAcrossRanks());
}

TEST(CudaNcclTest, TrainingThroughNcclWithZero1MatchesSingleProcessAdamW) {
  SL_SKIP_WITHOUT_NCCL_GPU();
  ExpectNcclPathMatchesSingleProcess("zero1_adamw", "distributed { zero1: true }");
}

TEST(CudaNcclTest, TrainingThroughNcclWithZero1MatchesSingleProcessMuon) {
  SL_SKIP_WITHOUT_NCCL_GPU();
  ExpectNcclPathMatchesSingleProcess(
      "zero1_muon",
      "optim { matrix_optimizer: MUON muon { lr: 0.02 } } distributed { zero1: true }",
      MuonAcrossRanks());
}

// A run stopped after step 2 and resumed from its checkpoint (written from the ZeRO-1 shards
// and the Muon momenta on the GPU, read back into them) continues as the uninterrupted run:
// the GPU kernels and NCCL sums are deterministic for a fixed number of ranks, so only a
// state that was lost or misplaced shows (an AdamW or Muon restart moves weights by ~lr).
TEST(CudaNcclTest, ResumeUnderZero1OnGpuContinuesTheRun) {
  SL_SKIP_WITHOUT_NCCL_GPU();
  UseThisRanksGpu();
  Communicator& world = World();
  setenv("SINKLAB_FORCE_NCCL", "1", /*overwrite=*/1);
  const std::string extra =
      "optim { matrix_optimizer: MUON muon { lr: 0.02 } } distributed { zero1: true } "
      "checkpoint { every: 2 keep: 0 }";
  TrainOptions options;
  options.device = Device::kCuda;
  options.print_progress = false;
  options.comm = &world;
  absl::StatusOr<TrainResult> whole =
      Train(SmallConfig(SharedTestRoot("zero1_whole"), extra), options);
  CheckOkOrAbort(whole.status());
  const Config config = SmallConfig(SharedTestRoot("zero1_resumed"), extra);
  TrainOptions first = options;
  first.stop_at_step = 2;
  absl::StatusOr<TrainResult> part1 = Train(config, first);
  CheckOkOrAbort(part1.status());
  TrainOptions second = options;
  second.resume_dir = part1->run_dir;
  absl::StatusOr<TrainResult> part2 = Train(config, second);
  CheckOkOrAbort(part2.status());
  unsetenv("SINKLAB_FORCE_NCCL");
  EXPECT_EQ(part2->first_step, 2);
  ASSERT_EQ(part2->step_losses.size(), 2u);
  EXPECT_NEAR(part2->step_losses[0], whole->step_losses[2], 1e-5 * whole->step_losses[2]);
  EXPECT_NEAR(part2->step_losses[1], whole->step_losses[3], 1e-5 * whole->step_losses[3]);
  if (world.rank() == 0) {
    const float diff = MaxWeightDifference(whole->run_dir + "/model.safetensors",
                                           part2->run_dir + "/model.safetensors");
    EXPECT_LE(diff, 1e-6f);
    std::printf("[ zero1 resume ] step 4 loss %.7f vs %.7f uninterrupted, max weight "
                "difference %.3g\n",
                part2->step_losses[1], whole->step_losses[3], diff);
  }
  world.Barrier();
}

}  // namespace
}  // namespace sinklab

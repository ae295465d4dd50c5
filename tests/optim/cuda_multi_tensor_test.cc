// The multi-tensor GPU optimizers (optim/cuda/multi_tensor_gpu.h) against the CPU
// references: strided-batched GemmLt against per-matrix products; batched Newton-Schulz
// against the single-matrix GPU path and the CPU iteration for both orientations; AdamW
// over odd-sized tensors spanning several chunks and Muon over every shape group, both with
// the clip factor folded in, the bf16 compute copies written and the statistics recorded.
#if SINKLAB_WITH_CUDA

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "configs/sinklab.pb.h"
#include "core/arena.h"
#include "core/cuda_check.h"
#include "core/rng.h"
#include "gtest/gtest.h"
#include "layers/cuda/gemm_lt.h"
#include "optim/clip.h"
#include "optim/cuda/multi_tensor_gpu.h"
#include "optim/cuda/newton_schulz_gpu.h"
#include "optim/cuda/optim_kernels.h"
#include "optim/newton_schulz.h"
#include "optim/optimizer_set.h"
#include "tests/layers/cuda_test_util.h"

namespace sinklab {
namespace {

std::vector<float> Random(int64_t n, uint64_t stream, float std = 1.0f) {
  std::vector<float> v(n);
  FillNormal(v.data(), n, 0.0f, std, /*seed=*/4242, stream);
  return v;
}

std::vector<float> RoundBf16(std::vector<float> v) {
  for (float& x : v) x = BF16ToFloat(FloatToBF16(x));
  return v;
}

void Upload(const Tensor& t, const std::vector<float>& v) {
  if (t.dtype() == DType::kBF16) {
    std::vector<BF16> bits(v.size());
    for (size_t i = 0; i < v.size(); ++i) bits[i] = FloatToBF16(v[i]);
    CopyTensorFromHost(t, bits.data());
  } else {
    CopyTensorFromHost(t, v.data());
  }
}

// x [rows, cols] -> [cols, rows].
std::vector<float> Transpose(const std::vector<float>& x, int64_t rows, int64_t cols) {
  std::vector<float> t(x.size());
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) t[c * rows + r] = x[r * cols + c];
  }
  return t;
}

TEST(CudaMultiTensorTest, BatchedGemmMatchesPerMatrixProducts) {
  SL_SKIP_WITHOUT_CUDA();
  const int64_t batch = 3, m = 40, k = 72, n = 24;
  Arena arena(Device::kCuda, size_t{4} << 20);
  GemmLt gemm(/*stream=*/nullptr);
  for (const bool trans_a : {false, true}) {
    const std::vector<float> a = RoundBf16(Random(batch * m * k, 1 + trans_a));
    const std::vector<float> b = RoundBf16(Random(batch * n * k, 3));  // stored [n, k]
    const std::vector<float> c = Random(batch * m * n, 4);
    const Tensor a_dev = trans_a ? arena.Allocate(DType::kBF16, {batch, k, m})
                                 : arena.Allocate(DType::kBF16, {batch, m, k});
    const Tensor b_dev = arena.Allocate(DType::kBF16, {batch, n, k});
    const Tensor c_dev = arena.Allocate(DType::kF32, {batch, m, n});
    const Tensor d_dev = arena.Allocate(DType::kF32, {batch, m, n});
    Upload(a_dev, a);  // a's values read as [k, m] per matrix when trans_a
    Upload(b_dev, b);
    Upload(c_dev, c);
    const float alpha = 0.75f, beta = -1.5f;
    gemm.RowMajorBatched(d_dev, a_dev, trans_a, b_dev, /*trans_b=*/true, alpha, beta, c_dev);
    std::vector<float> want(batch * m * n);
    for (int64_t i = 0; i < batch; ++i) {
      for (int64_t r = 0; r < m; ++r) {
        for (int64_t col = 0; col < n; ++col) {
          double dot = 0;
          for (int64_t j = 0; j < k; ++j) {
            const float av = trans_a ? a[i * k * m + j * m + r] : a[i * m * k + r * k + j];
            dot += static_cast<double>(av) * b[i * n * k + col * k + j];
          }
          const int64_t o = i * m * n + r * n + col;
          want[o] = static_cast<float>(alpha * dot + beta * c[o]);
        }
      }
    }
    EXPECT_LT(RelError(DeviceValues(d_dev), want), kF32RelTol) << "trans_a=" << trans_a;
    EXPECT_EQ(DeviceValues(c_dev), c) << "c is an input only";
  }
}

// Wide and tall matrices of one wide shape [n, m], batched after orienting the tall ones:
// the result matches the single-matrix GPU iteration and the CPU fp32 iteration.
TEST(CudaMultiTensorTest, BatchedNewtonSchulzMatchesSingleMatrixAndCpu) {
  SL_SKIP_WITHOUT_CUDA();
  const int64_t n = 48, m = 80;
  const std::vector<bool> tall = {false, true, false, true};
  const int64_t batch = static_cast<int64_t>(tall.size());
  Arena cpu_arena(Device::kCpu, size_t{4} << 20), gpu_arena(Device::kCuda, size_t{8} << 20);
  NewtonSchulzWorkspace workspace(n * m, n, &cpu_arena);
  NewtonSchulzGpu single(n * m, n, &gpu_arena);
  BatchedNewtonSchulzGpu batched(batch * n * m, batch * n * n, &gpu_arena);
  cuda_optim::DeviceSums sums(1);
  std::vector<float> oriented_batch;  // normalized, bf16-rounded, wide
  std::vector<std::vector<float>> cpu_out, single_out;
  for (int64_t i = 0; i < batch; ++i) {
    const int64_t rows = tall[i] ? m : n, cols = tall[i] ? n : m;
    const std::vector<float> g = Random(rows * cols, 10 + i);
    std::vector<float> out(rows * cols);
    std::vector<float> g_copy = g;
    NewtonSchulz5(Tensor(g_copy.data(), DType::kF32, Device::kCpu, {rows, cols}), 5, workspace,
                  Tensor(out.data(), DType::kF32, Device::kCpu, {rows, cols}));
    cpu_out.push_back(tall[i] ? Transpose(out, rows, cols) : out);  // oriented
    double sum = 0;
    for (float v : g) sum += static_cast<double>(v) * v;
    const float inv = static_cast<float>(1.0 / (std::sqrt(sum) + kNewtonSchulzEps));
    std::vector<float> x = tall[i] ? Transpose(g, rows, cols) : g;
    for (float& v : x) v *= inv;
    x = RoundBf16(x);
    oriented_batch.insert(oriented_batch.end(), x.begin(), x.end());
    const Tensor one = gpu_arena.Allocate(DType::kBF16, {n, m});
    Upload(one, x);
    single.Run(one, 5, sums, 0);
    single_out.push_back(DeviceValues(one));
  }
  const Tensor x = gpu_arena.Allocate(DType::kBF16, {batch, n, m});
  Upload(x, oriented_batch);
  const std::vector<float> got = DeviceValues(batched.Iterate(x, 5));
  for (int64_t i = 0; i < batch; ++i) {
    const std::vector<float> mine(got.begin() + i * n * m, got.begin() + (i + 1) * n * m);
    EXPECT_LT(RelError(mine, single_out[i]), 3e-2) << "matrix " << i;
    EXPECT_LT(RelError(mine, cpu_out[i]), 5e-2) << "matrix " << i;
  }
  // Even step counts leave the result in x itself.
  Upload(x, oriented_batch);
  EXPECT_EQ(batched.Iterate(x, 2).data(), x.data());
}

// The same parameters on the CPU (compute aliases master) and on the GPU (bf16 compute).
struct Twins {
  Arena cpu_arena{Device::kCpu, size_t{16} << 20};
  Arena gpu_arena{Device::kCuda, size_t{64} << 20};
  std::deque<Parameter> cpu_store, gpu_store;
  std::vector<Parameter*> cpu, gpu;

  void Add(const std::string& name, ParamKind kind, std::initializer_list<int64_t> shape) {
    Parameter& c = cpu_store.emplace_back();
    Parameter& g = gpu_store.emplace_back();
    c.name = g.name = name;
    c.kind = g.kind = kind;
    c.master = cpu_arena.Allocate(DType::kF32, shape);
    c.grad = cpu_arena.Allocate(DType::kF32, shape);
    c.compute = c.master;
    g.master = gpu_arena.Allocate(DType::kF32, shape);
    g.grad = gpu_arena.Allocate(DType::kF32, shape);
    g.compute = gpu_arena.Allocate(DType::kBF16, shape);
    const std::vector<float> init = Random(c.master.numel(), 100 + cpu.size(), 0.1f);
    std::copy(init.begin(), init.end(), c.master.f32());
    Upload(g.master, init);
    cpu.push_back(&c);
    gpu.push_back(&g);
  }
  void SetGrads(int step, float std) {
    for (size_t i = 0; i < cpu.size(); ++i) {
      const std::vector<float> g = Random(cpu[i]->grad.numel(), step * 1000 + i, std);
      std::copy(g.begin(), g.end(), cpu[i]->grad.f32());
      Upload(gpu[i]->grad, g);
    }
  }
};

std::vector<float> HostValues(const Tensor& t) {
  return std::vector<float>(t.f32(), t.f32() + t.numel());
}

void ExpectComputeCopiesRefreshed(const std::vector<Parameter*>& params) {
  for (const Parameter* param : params) {
    const std::vector<float> master = DeviceValues(param->master), compute = DeviceValues(param->compute);
    for (size_t j = 0; j < master.size(); ++j) {
      ASSERT_EQ(compute[j], BF16ToFloat(FloatToBF16(master[j]))) << param->name << " " << j;
    }
  }
}

// Runs `steps` clipped steps on both sides through OptimizerSet (clip_norm well under the
// gradients' norm, so clipping is active); returns the GPU set for its statistics.
std::unique_ptr<OptimizerSet> RunClippedSteps(const OptimConfig& config, Twins& p, int steps,
                                              std::map<std::string, double>* cpu_stats) {
  absl::StatusOr<std::unique_ptr<OptimizerSet>> cpu =
      OptimizerSet::Create(config, p.cpu, &p.cpu_arena);
  absl::StatusOr<std::unique_ptr<OptimizerSet>> gpu =
      OptimizerSet::Create(config, p.gpu, &p.gpu_arena);
  EXPECT_TRUE(cpu.ok() && gpu.ok());
  constexpr float kClip = 0.5f;
  for (int step = 1; step <= steps; ++step) {
    p.SetGrads(step, 2.0f);
    const std::vector<float> grad_before = DeviceValues(p.gpu[0]->grad);
    (*cpu)->set_record_stats(step == steps);
    (*gpu)->set_record_stats(step == steps);
    const float cpu_norm = (*cpu)->ClipGradients(kClip);
    const float gpu_norm = (*gpu)->ClipGradients(kClip);
    EXPECT_GT(cpu_norm, 4 * kClip);
    EXPECT_NEAR(gpu_norm, cpu_norm, 1e-5 * cpu_norm) << "step " << step;
    EXPECT_EQ(DeviceValues(p.gpu[0]->grad), grad_before) << "the GPU folds the clip into Step";
    (*cpu)->Step(0.8f, step);
    (*gpu)->Step(0.8f, step);
  }
  *cpu_stats = (*cpu)->LastUpdateStats();
  return std::move(*gpu);
}

// The device clip factor: ClipGradNorm's rule, 1 when clipping is off, not needed or the
// norm is not finite; the norm matches the CPU's.
TEST(CudaMultiTensorTest, GradNormLeavesClipGradNormsFactorOnTheDevice) {
  SL_SKIP_WITHOUT_CUDA();
  Twins p;
  p.Add("a", ParamKind::kMatrix, {37, 29});
  p.Add("b", ParamKind::kBias, {70001});
  p.SetGrads(1, 0.5f);
  cuda_optim::MultiTensorGradNorm norm(p.gpu, &p.gpu_arena);
  const auto factor = [&norm] {
    float f = 0;
    SL_CUDA_CHECK(cudaMemcpy(&f, norm.clip_factor(), sizeof(f), cudaMemcpyDeviceToHost));
    return f;
  };
  const float want = GlobalGradNorm(p.cpu);
  ASSERT_GT(want, 2.0f);
  const float got = norm.Compute(2.0f);
  EXPECT_NEAR(got, want, 1e-5 * want);
  EXPECT_EQ(factor(), static_cast<float>(2.0 / (static_cast<double>(got) + 1e-6)));
  EXPECT_NEAR(norm.Compute(0.0f), want, 1e-5 * want);  // clipping off
  EXPECT_EQ(factor(), 1.0f);
  norm.Compute(2.0f * want);  // under the limit
  EXPECT_EQ(factor(), 1.0f);
  const float nan = std::nanf("");
  SL_CUDA_CHECK(cudaMemcpy(p.gpu[1]->grad.f32() + 5, &nan, sizeof(nan), cudaMemcpyHostToDevice));
  EXPECT_TRUE(std::isnan(norm.Compute(2.0f)));
  EXPECT_EQ(factor(), 1.0f);
}

TEST(CudaMultiTensorTest, AdamWMatchesTheCpuWithClippingAndRefreshesCopies) {
  SL_SKIP_WITHOUT_CUDA();
  Twins p;
  p.Add("embed", ParamKind::kEmbedding, {257, 301});  // 77357 elements: 3 chunks
  p.Add("layers.0.attn_norm", ParamKind::kNorm, {301});
  p.Add("layers.0.attn.wq", ParamKind::kMatrix, {33, 65});
  p.Add("lm_head", ParamKind::kHead, {1, 1});
  p.Add("norm", ParamKind::kNorm, {32768});  // exactly one chunk
  OptimConfig config;
  config.set_weight_decay(0.1f);
  std::map<std::string, double> cpu_stats;
  const std::unique_ptr<OptimizerSet> gpu = RunClippedSteps(config, p, 3, &cpu_stats);
  for (size_t i = 0; i < p.cpu.size(); ++i) {
    EXPECT_LT(RelError(DeviceValues(p.gpu[i]->master), HostValues(p.cpu[i]->master)), 1e-6)
        << p.cpu[i]->name;
  }
  ExpectComputeCopiesRefreshed(p.gpu);
  const std::map<std::string, double> gpu_stats = gpu->LastUpdateStats();
  ASSERT_EQ(gpu_stats.size(), cpu_stats.size());
  ASSERT_FALSE(cpu_stats.empty());
  for (const auto& [name, value] : cpu_stats) {
    EXPECT_NEAR(gpu_stats.at(name), value, 1e-4 * std::abs(value)) << name;
  }
}

TEST(CudaMultiTensorTest, MuonMatchesTheCpuOverEveryShapeGroupWithClipping) {
  SL_SKIP_WITHOUT_CUDA();
  Twins p;
  p.Add("embed", ParamKind::kEmbedding, {50, 64});
  for (int layer = 0; layer < 2; ++layer) {
    const std::string prefix = "layers." + std::to_string(layer) + ".";
    p.Add(prefix + "attn.wq", ParamKind::kMatrix, {64, 64});
    p.Add(prefix + "attn.wo", ParamKind::kMatrix, {64, 64});
    p.Add(prefix + "mlp.w_gate", ParamKind::kMatrix, {160, 64});  // tall
    p.Add(prefix + "mlp.w_down", ParamKind::kMatrix, {64, 160});  // wide, same group
    p.Add(prefix + "odd_wide", ParamKind::kMatrix, {37, 71});
    p.Add(prefix + "odd_tall", ParamKind::kMatrix, {71, 37});
    p.Add(prefix + "mlp_norm", ParamKind::kNorm, {64});
  }
  OptimConfig config;
  config.set_matrix_optimizer(MUON);
  config.set_weight_decay(0.1f);
  config.mutable_muon()->set_nesterov(true);
  std::vector<std::vector<float>> before;
  for (const Parameter* param : p.cpu) before.push_back(HostValues(param->master));
  std::map<std::string, double> cpu_stats;
  const std::unique_ptr<OptimizerSet> gpu = RunClippedSteps(config, p, 2, &cpu_stats);
  ASSERT_NE(gpu->muon(), nullptr);
  for (size_t i = 0; i < p.cpu.size(); ++i) {  // the updates, not the weights
    std::vector<float> cpu_delta = HostValues(p.cpu[i]->master);
    std::vector<float> gpu_delta = DeviceValues(p.gpu[i]->master);
    for (size_t j = 0; j < cpu_delta.size(); ++j) {
      cpu_delta[j] -= before[i][j];
      gpu_delta[j] -= before[i][j];
    }
    EXPECT_LT(RelError(gpu_delta, cpu_delta), 5e-2) << p.cpu[i]->name;
  }
  ExpectComputeCopiesRefreshed(p.gpu);
  const std::map<std::string, double> gpu_stats = gpu->LastUpdateStats();
  ASSERT_EQ(gpu_stats.size(), cpu_stats.size());
  for (const auto& [name, value] : cpu_stats) {
    EXPECT_NEAR(gpu_stats.at(name), value, 0.05 * std::abs(value)) << name;
  }
}

}  // namespace
}  // namespace sinklab

#endif  // SINKLAB_WITH_CUDA

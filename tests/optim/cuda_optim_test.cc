// The GPU optimizer path (optim/cuda/) against the CPU reference: AdamW and gradient clipping
// agree to fp32 rounding; Muon's bf16 Newton-Schulz keeps the singular vectors, lands its
// singular values in the quintic's band and matches the CPU iteration within bf16 noise;
// OptimizerSet refreshes the bf16 compute copies after a step.
#if SINKLAB_WITH_CUDA

#include <cmath>
#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "configs/sinklab.pb.h"
#include "core/arena.h"
#include "core/rng.h"
#include "gtest/gtest.h"
#include "optim/adamw.h"
#include "optim/clip.h"
#include "optim/cuda/newton_schulz_gpu.h"
#include "optim/cuda/optim_kernels.h"
#include "optim/muon.h"
#include "optim/newton_schulz.h"
#include "optim/optimizer_set.h"
#include "tests/layers/cuda_test_util.h"
#include "tests/optim/jacobi_svd.h"

namespace sinklab {
namespace {

std::vector<float> RandomValues(int64_t n, uint64_t stream, float std) {
  std::vector<float> v(n);
  FillNormal(v.data(), n, 0.0f, std, /*seed=*/77, stream);
  return v;
}

// The same parameters on the CPU (compute aliases master) and on the GPU (bf16 compute).
struct TwinParams {
  Arena cpu_arena{Device::kCpu, size_t{8} << 20};
  Arena gpu_arena{Device::kCuda, size_t{8} << 20};
  std::deque<Parameter> cpu_store, gpu_store;
  std::vector<Parameter*> cpu, gpu;

  void Add(const std::string& name, ParamKind kind, std::initializer_list<int64_t> shape,
           uint64_t stream) {
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
    const std::vector<float> init = RandomValues(c.master.numel(), stream, 0.1f);
    std::copy(init.begin(), init.end(), c.master.f32());
    CopyTensorFromHost(g.master, init.data());
    cpu.push_back(&c);
    gpu.push_back(&g);
  }
  // The same fresh random gradient on both sides.
  void SetGrads(uint64_t stream, float std = 1.0f) {
    for (size_t i = 0; i < cpu.size(); ++i) {
      const std::vector<float> g = RandomValues(cpu[i]->grad.numel(), stream * 100 + i, std);
      std::copy(g.begin(), g.end(), cpu[i]->grad.f32());
      CopyTensorFromHost(gpu[i]->grad, g.data());
    }
  }
};

TEST(CudaOptimTest, AdamWMatchesTheCpuUpdateOverSeveralSteps) {
  SL_SKIP_WITHOUT_CUDA();
  TwinParams p;
  p.Add("w", ParamKind::kMatrix, {37, 50}, 1);
  p.Add("norm", ParamKind::kNorm, {50}, 2);
  OptimConfig config;
  config.set_weight_decay(0.1f);
  AdamW cpu(config, p.cpu, &p.cpu_arena);
  AdamW gpu(config, p.gpu, &p.gpu_arena);
  for (int step = 1; step <= 3; ++step) {
    p.SetGrads(step);
    cpu.set_record_stats(step == 3);
    gpu.set_record_stats(step == 3);
    cpu.Step(1e-2f, step);
    gpu.Step(1e-2f, step);
  }
  for (size_t i = 0; i < p.cpu.size(); ++i) {
    const std::vector<float> want(p.cpu[i]->master.f32(),
                                  p.cpu[i]->master.f32() + p.cpu[i]->master.numel());
    EXPECT_LT(RelError(DeviceValues(p.gpu[i]->master), want), 1e-6) << p.cpu[i]->name;
    EXPECT_NEAR(gpu.last_update_sum_squares()[i], cpu.last_update_sum_squares()[i],
                1e-4 * cpu.last_update_sum_squares()[i]);
  }
}

TEST(CudaOptimTest, GradNormAndClippingMatchTheCpu) {
  SL_SKIP_WITHOUT_CUDA();
  TwinParams p;
  p.Add("a", ParamKind::kMatrix, {37, 29}, 1);
  p.Add("b", ParamKind::kBias, {129}, 2);
  p.SetGrads(5, 2.0f);
  const float cpu_norm = GlobalGradNorm(p.cpu);
  const float gpu_norm = GlobalGradNorm(p.gpu);
  EXPECT_NEAR(gpu_norm, cpu_norm, 1e-5 * cpu_norm);
  ClipGradNorm(p.cpu, 1.0f);
  ClipGradNorm(p.gpu, 1.0f);
  EXPECT_NEAR(GlobalGradNorm(p.gpu), 1.0f, 1e-5);
  for (size_t i = 0; i < p.cpu.size(); ++i) {
    const std::vector<float> want(p.cpu[i]->grad.f32(),
                                  p.cpu[i]->grad.f32() + p.cpu[i]->grad.numel());
    EXPECT_LT(RelError(DeviceValues(p.gpu[i]->grad), want), 1e-6);
  }
  ZeroGrads(p.gpu);
  EXPECT_EQ(GlobalGradNorm(p.gpu), 0.0f);
}

// Newton-Schulz on the GPU (bf16) for both orientations: the CPU iteration (fp32) is the
// judge for the values, the fp64 SVD for the band and the singular vectors.
TEST(CudaOptimTest, NewtonSchulzGpuMatchesCpuAndKeepsSingularVectors) {
  SL_SKIP_WITHOUT_CUDA();
  for (const auto& [rows, cols] : std::vector<std::pair<int64_t, int64_t>>{{48, 80}, {80, 48}}) {
    std::vector<float> g = RandomValues(rows * cols, rows, 1.0f);
    Arena cpu_arena(Device::kCpu, size_t{4} << 20), gpu_arena(Device::kCuda, size_t{4} << 20);
    NewtonSchulzWorkspace workspace(rows * cols, std::min(rows, cols), &cpu_arena);
    std::vector<float> cpu_out(rows * cols);
    NewtonSchulz5(Tensor(g.data(), DType::kF32, Device::kCpu, {rows, cols}), 5, workspace,
                  Tensor(cpu_out.data(), DType::kF32, Device::kCpu, {rows, cols}));

    const Tensor x = gpu_arena.Allocate(DType::kBF16, {rows, cols});
    std::vector<BF16> bits(rows * cols);
    for (int64_t i = 0; i < rows * cols; ++i) bits[i] = FloatToBF16(g[i]);
    CopyTensorFromHost(x, bits.data());
    NewtonSchulzGpu newton_schulz(rows * cols, std::min(rows, cols), &gpu_arena);
    cuda_optim::DeviceSums sums(1);
    newton_schulz.Run(x, 5, sums, 0);
    const std::vector<float> gpu_out = DeviceValues(x);
    EXPECT_LT(RelError(gpu_out, cpu_out), 5e-2) << rows << "x" << cols;

    // Singular values in the band (bf16 widens it a little) and U^T X V diagonal.
    std::vector<double> a(gpu_out.begin(), gpu_out.end()), in(g.begin(), g.end());
    const Svd out_svd = JacobiSvd(a, rows, cols);
    for (double s : out_svd.s) {
      EXPECT_GT(s, 0.6) << rows << "x" << cols;
      EXPECT_LT(s, 1.3) << rows << "x" << cols;
    }
    const Svd in_svd = JacobiSvd(in, rows, cols);
    double off = 0, diag = 0;  // of U_in^T X V_in
    for (int64_t i = 0; i < in_svd.k; ++i) {
      for (int64_t j = 0; j < in_svd.k; ++j) {
        double dot = 0;
        for (int64_t r = 0; r < rows; ++r) {
          for (int64_t c = 0; c < cols; ++c) {
            dot += in_svd.u[r * in_svd.k + i] * a[r * cols + c] * in_svd.v[c * in_svd.k + j];
          }
        }
        (i == j ? diag : off) += dot * dot;
      }
    }
    EXPECT_LT(std::sqrt(off / diag), 5e-2) << "singular vectors moved, " << rows << "x" << cols;
  }
}

TEST(CudaOptimTest, MuonStepMatchesTheCpuWithinBf16Noise) {
  SL_SKIP_WITHOUT_CUDA();
  TwinParams p;
  p.Add("tall", ParamKind::kMatrix, {96, 40}, 1);
  p.Add("wide", ParamKind::kMatrix, {40, 96}, 2);
  MuonConfig config;
  config.set_momentum(0.95f);
  config.set_nesterov(true);
  config.set_ns_steps(5);
  const std::vector<float> decays = {0.1f, 0.1f};
  Muon cpu(config, p.cpu, decays, &p.cpu_arena);
  Muon gpu(config, p.gpu, decays, &p.gpu_arena);
  std::vector<std::vector<float>> before;
  for (Parameter* param : p.cpu) before.push_back(DeviceValues(param->master));
  for (int step = 1; step <= 2; ++step) {
    p.SetGrads(step);
    cpu.set_record_stats(true);
    gpu.set_record_stats(true);
    cpu.Step(0.02f, step);
    gpu.Step(0.02f, step);
  }
  for (size_t i = 0; i < p.cpu.size(); ++i) {  // compare the updates, not the weights
    std::vector<float> cpu_delta = DeviceValues(p.cpu[i]->master), gpu_delta = DeviceValues(p.gpu[i]->master);
    for (size_t j = 0; j < cpu_delta.size(); ++j) {
      cpu_delta[j] -= before[i][j];
      gpu_delta[j] -= before[i][j];
    }
    EXPECT_LT(RelError(gpu_delta, cpu_delta), 5e-2) << p.cpu[i]->name;
    EXPECT_NEAR(gpu.last_sigma_max()[i], cpu.last_sigma_max()[i], 0.05 * cpu.last_sigma_max()[i]);
  }
}

TEST(CudaOptimTest, OptimizerSetRefreshesTheBf16ComputeCopies) {
  SL_SKIP_WITHOUT_CUDA();
  TwinParams p;
  p.Add("layers.0.attn.wq", ParamKind::kMatrix, {64, 64}, 1);
  p.Add("final_norm", ParamKind::kNorm, {64}, 2);
  OptimConfig config;
  config.set_matrix_optimizer(MUON);
  absl::StatusOr<std::unique_ptr<OptimizerSet>> set =
      OptimizerSet::Create(config, p.gpu, &p.gpu_arena);
  ASSERT_TRUE(set.ok()) << set.status();
  p.SetGrads(3);
  (*set)->Step(1.0f, 1);
  for (Parameter* param : p.gpu) {
    const std::vector<float> master = DeviceValues(param->master), compute = DeviceValues(param->compute);
    for (size_t j = 0; j < master.size(); ++j) {
      ASSERT_EQ(compute[j], BF16ToFloat(FloatToBF16(master[j]))) << param->name << " " << j;
    }
  }
}

}  // namespace
}  // namespace sinklab

#endif  // SINKLAB_WITH_CUDA

// Timing of one training step of the default job's shape (batch 16, seq 128, D 128, 4 layers,
// 4 heads, F 384, vocab 264). Disabled (no timing in the normal test run); run with
//   build/tests/layers_tests --gtest_also_run_disabled_tests --gtest_filter='*Benchmark*'
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

#include "gtest/gtest.h"
#include "layers/cpu/cpu_backend.h"
#include "layers/model.h"
#include "tests/layers/gradient_check.h"

namespace sinklab {
namespace {

TEST(ModelBenchmark, DISABLED_DefaultJobForwardBackward) {
  CpuBackend backend;
  Arena arena;
  TensorPool pool;
  ModelConfig config;
  config.set_vocab_size(264);
  config.set_d_model(128);
  config.set_n_layers(4);
  config.set_n_heads(4);
  config.set_ffn_hidden(384);
  const int B = 16, T = 128;
  Model model(config, B, T, &backend, &arena);
  model.InitParameters(1);
  std::vector<int32_t> ids(B * T);
  Rng rng(1, 1);
  for (auto& id : ids) id = static_cast<int32_t>(rng.Below(264));
  Tensor tokens = pool.Ints({B, T}, ids), targets = pool.Ints({B, T}, ids);
  using Clock = std::chrono::steady_clock;
  auto ms = [](Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); };
  model.Forward(tokens, targets);  // warm-up
  model.Backward(1.0f);
  const int steps = 20;
  double forward_ms = 0, backward_ms = 0, best_ms = 1e30;
  for (int s = 0; s < steps; ++s) {
    const auto t0 = Clock::now();
    model.Forward(tokens, targets);
    const auto t1 = Clock::now();
    model.Backward(1.0f);
    const auto t2 = Clock::now();
    forward_ms += ms(t1 - t0);
    backward_ms += ms(t2 - t1);
    best_ms = std::min(best_ms, ms(t2 - t0));
  }
  std::printf("default job step (%d threads, %lld params): forward %.1f ms, backward %.1f ms, "
              "mean %.1f ms, best %.1f ms\n",
              omp_get_max_threads(), static_cast<long long>(model.NumParameters()),
              forward_ms / steps, backward_ms / steps, (forward_ms + backward_ms) / steps,
              best_ms);
}

}  // namespace
}  // namespace sinklab

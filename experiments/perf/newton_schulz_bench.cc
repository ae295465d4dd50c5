// Times Muon's batched bf16 Newton-Schulz (optim/cuda/newton_schulz_gpu.h) on the shape
// groups of a model's hidden matrices, with CUDA events, and prints ms and TFLOP/s per group
// and in all. FLOPs per step of a wide [n, m] matrix: A = X X^T 2n^2m, A A 2n^3, B X 2n^2m.
// The defaults are llama_160m's (12 layers: Wq Wk Wv Wo [768, 768]; W1 W3 [2048, 768] and
// W2 [768, 2048], all wide [768, 2048]), 5 steps as the Muon preset.
//   build/experiments/perf/newton_schulz_bench [steps [count n m]...]
#include <cuda_runtime.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "core/arena.h"
#include "core/cuda_check.h"
#include "core/rng.h"
#include "optim/cuda/newton_schulz_gpu.h"

namespace sinklab {
namespace {

struct ShapeGroup {
  int64_t count, n, m;
};

// Entries N(0, 1 / (n m)): each matrix has a Frobenius norm near 1, as after Muon's scaling.
Tensor RandomBatch(Arena& arena, const ShapeGroup& g, uint64_t stream) {
  Tensor t = arena.Allocate(DType::kBF16, {g.count, g.n, g.m});
  std::vector<float> host(t.numel());
  FillNormal(host.data(), t.numel(), 0.0f, 1.0f / std::sqrt(static_cast<float>(g.n * g.m)), 7,
             stream);
  std::vector<BF16> bits(t.numel());
  for (int64_t i = 0; i < t.numel(); ++i) bits[i] = FloatToBF16(host[i]);
  CopyTensorFromHost(t, bits.data());
  return t;
}

int Run(int argc, char** argv) {
  const int steps = argc > 1 ? std::atoi(argv[1]) : 5;
  std::vector<ShapeGroup> groups;
  for (int i = 2; i + 2 < argc; i += 3) {
    groups.push_back({std::atoll(argv[i]), std::atoll(argv[i + 1]), std::atoll(argv[i + 2])});
  }
  if (groups.empty()) groups = {{48, 768, 768}, {36, 768, 2048}};
  int64_t max_numel = 0, max_gram = 0;
  for (const ShapeGroup& g : groups) {
    if (g.count < 1 || g.n < 1 || g.n > g.m) {
      std::fprintf(stderr, "newton_schulz_bench: group %ld x [%ld, %ld] must be wide (n <= m)\n",
                   g.count, g.n, g.m);
      return 2;
    }
    max_numel = std::max(max_numel, g.count * g.n * g.m);
    max_gram = std::max(max_gram, g.count * g.n * g.n);
  }
  Arena arena(Device::kCuda);
  BatchedNewtonSchulzGpu newton_schulz(max_numel, max_gram, &arena);
  cudaEvent_t start, stop;
  SL_CUDA_CHECK(cudaEventCreate(&start));
  SL_CUDA_CHECK(cudaEventCreate(&stop));
  std::printf("newton_schulz_bench: %d steps, bf16, stream 0\n", steps);
  double total_ms = 0, total_flops = 0;
  for (size_t index = 0; index < groups.size(); ++index) {
    const ShapeGroup& g = groups[index];
    const Tensor x = RandomBatch(arena, g, index);
    const double n = g.n, m = g.m;
    const double flops = g.count * steps * (4.0 * n * n * m + 2.0 * n * n * n);
    constexpr int kIters = 20;
    float ms = 0;
    for (int pass = 0; pass < 2; ++pass) {  // pass 0 warms up (plans, caches)
      SL_CUDA_CHECK(cudaEventRecord(start, 0));
      for (int i = 0; i < kIters; ++i) newton_schulz.Iterate(x, steps);
      SL_CUDA_CHECK(cudaEventRecord(stop, 0));
      SL_CUDA_CHECK(cudaEventSynchronize(stop));
      SL_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    }
    ms /= kIters;
    total_ms += ms;
    total_flops += flops;
    std::printf("  %4ld x [%5ld, %5ld]: %7.3f ms  %6.1f TFLOP/s  (%.3f TFLOP)\n", g.count, g.n, g.m,
                ms, flops / ms / 1e9, flops / 1e12);
  }
  std::printf("  all groups:          %7.3f ms  %6.1f TFLOP/s  (%.3f TFLOP)\n", total_ms,
              total_flops / total_ms / 1e9, total_flops / 1e12);
  return 0;
}

}  // namespace
}  // namespace sinklab

int main(int argc, char** argv) { return sinklab::Run(argc, argv); }

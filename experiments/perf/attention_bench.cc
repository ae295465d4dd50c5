// Times CudaBackend's fused attention (forward, and forward + backward) at the llama_160m
// shape on random bf16 inputs, with CUDA events, for every normalizer, and prints TFLOP/s
// with the causal FLOP count of FlashAttention's papers: forward 4 B H T^2 d / 2 (QK^T and
// PV on the lower triangle), backward 2.5x the forward. A last line times softmax through
// cuDNN's fused attention (allow_library_kernel, layers/cuda/cudnn_attention.h); backwards
// write their gradients (GradWrite::kAssign) as training does.
//   build/experiments/perf/attention_bench [B H T d]
#include <cuda_runtime.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/arena.h"
#include "core/cuda_check.h"
#include "core/rng.h"
#include "layers/cuda/cuda_backend.h"

namespace sinklab {
namespace {

Tensor RandomBf16(Arena& arena, std::initializer_list<int64_t> shape, uint64_t stream) {
  Tensor t = arena.Allocate(DType::kBF16, shape);
  std::vector<float> host(t.numel());
  FillNormal(host.data(), t.numel(), 0.0f, 1.0f, 5, stream);
  std::vector<BF16> bits(t.numel());
  for (int64_t i = 0; i < t.numel(); ++i) bits[i] = FloatToBF16(host[i]);
  CopyTensorFromHost(t, bits.data());
  return t;
}

int Run(int argc, char** argv) {
  const int64_t B = argc > 1 ? std::atoi(argv[1]) : 16, H = argc > 2 ? std::atoi(argv[2]) : 12;
  const int64_t T = argc > 3 ? std::atoi(argv[3]) : 1024, d = argc > 4 ? std::atoi(argv[4]) : 64;
  CudaBackend backend;
  Arena arena(Device::kCuda);
  const Tensor q = RandomBf16(arena, {B, T, H, d}, 1), k = RandomBf16(arena, {B, T, H, d}, 2);
  const Tensor v = RandomBf16(arena, {B, T, H, d}, 3), dout = RandomBf16(arena, {B, T, H, d}, 4);
  const Tensor out = arena.Allocate(DType::kBF16, {B, T, H, d});
  const Tensor lse = arena.Allocate(DType::kF32, {B, H, T});
  const Tensor unclipped = arena.Allocate(DType::kF32, {B, T, H, d});  // clipped softmax's C
  const Tensor dq = arena.Allocate(DType::kBF16, {B, T, H, d});
  const Tensor dk = arena.Allocate(DType::kBF16, {B, T, H, d});
  const Tensor dv = arena.Allocate(DType::kBF16, {B, T, H, d});
  const Tensor sink = arena.Allocate(DType::kF32, {H}), dsink = arena.Allocate(DType::kF32, {H});
  const double fwd_flops = 4.0 * B * H * T * T * d / 2;
  cudaEvent_t start, stop;
  SL_CUDA_CHECK(cudaEventCreate(&start));
  SL_CUDA_CHECK(cudaEventCreate(&stop));
  const struct {
    const char* name;
    AttentionNormalizer normalizer;
  } variants[] = {{"softmax", AttentionNormalizer::kSoftmax},
                  {"softmax1", AttentionNormalizer::kSoftmax1},
                  {"sink_logit", AttentionNormalizer::kSinkLogit},
                  {"softpick", AttentionNormalizer::kSoftpick},
                  {"sigmoid", AttentionNormalizer::kSigmoid},
                  {"clipped_softmax", AttentionNormalizer::kClippedSoftmax}};
  std::printf("attention_bench B=%ld H=%ld T=%ld d=%ld (causal)\n", B, H, T, d);
  // The last entry: softmax again, through cuDNN.
  const int kVariants = sizeof(variants) / sizeof(variants[0]);
  for (int index = 0; index <= kVariants; ++index) {
    const bool cudnn = index == kVariants;
    const auto& variant = variants[cudnn ? 0 : index];
    AttentionSpec spec;
    spec.normalizer = variant.normalizer;
    spec.scale = 1.0f / std::sqrt(static_cast<float>(d));
    spec.sigmoid_bias = -std::log(static_cast<float>(T));
    const bool sink_logit = variant.normalizer == AttentionNormalizer::kSinkLogit;
    const Tensor unclipped_values =
        variant.normalizer == AttentionNormalizer::kClippedSoftmax ? unclipped : Tensor();
    const char* name = variant.name;
    if (cudnn) {
      name = "softmax (cudnn)";
      spec.allow_library_kernel = true;  // model.attention.kernel AUTO
      std::string why;
      for (const bool backward : {false, true}) {
        if (!backend.UsesCudnnAttention(q, k, spec, backward, &why)) {
          std::printf("  cuDNN runs no %s here (%s): the line below times sinklab's\n",
                      backward ? "backward" : "forward", why.c_str());
        }
      }
    }
    auto forward = [&] {
      backend.AttentionForward(out, Tensor(), lse, unclipped_values, q, k, v,
                               sink_logit ? sink : Tensor(), spec);
    };
    // kAssign as in training (Attention::Backward): our kernels' zero fills are timed too.
    auto backward = [&] {
      backend.AttentionBackward(dq, dk, dv, sink_logit ? dsink : Tensor(), dout, q, k, v,
                                sink_logit ? sink : Tensor(), out, unclipped_values, Tensor(), lse,
                                spec, GradWrite::kAssign);
    };
    float fwd_ms = 0, bwd_ms = 0;
    constexpr int kIters = 20;
    for (int pass = 0; pass < 2; ++pass) {  // pass 0 warms up
      SL_CUDA_CHECK(cudaEventRecord(start, backend.stream()));
      for (int i = 0; i < kIters; ++i) forward();
      SL_CUDA_CHECK(cudaEventRecord(stop, backend.stream()));
      SL_CUDA_CHECK(cudaEventSynchronize(stop));
      SL_CUDA_CHECK(cudaEventElapsedTime(&fwd_ms, start, stop));
      SL_CUDA_CHECK(cudaEventRecord(start, backend.stream()));
      for (int i = 0; i < kIters; ++i) backward();
      SL_CUDA_CHECK(cudaEventRecord(stop, backend.stream()));
      SL_CUDA_CHECK(cudaEventSynchronize(stop));
      SL_CUDA_CHECK(cudaEventElapsedTime(&bwd_ms, start, stop));
    }
    fwd_ms /= kIters;
    bwd_ms /= kIters;
    std::printf(
        "  %-16s fwd %7.3f ms %6.1f TFLOP/s | bwd %7.3f ms %6.1f TFLOP/s | fwd+bwd %6.1f "
        "TFLOP/s\n",
        name, fwd_ms, fwd_flops / fwd_ms / 1e9, bwd_ms, 2.5 * fwd_flops / bwd_ms / 1e9,
        3.5 * fwd_flops / (fwd_ms + bwd_ms) / 1e9);
  }
  return 0;
}

}  // namespace
}  // namespace sinklab

int main(int argc, char** argv) { return sinklab::Run(argc, argv); }

// Test helpers for the layer tests: random tensors from an arena, a weighted-sum scalar loss
// in double, and a central-difference gradient check on a random subset of entries.
#ifndef SINKLAB_TESTS_LAYERS_GRADIENT_CHECK_H_
#define SINKLAB_TESTS_LAYERS_GRADIENT_CHECK_H_

#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <initializer_list>
#include <string>
#include <vector>

#include "configs/sinklab.pb.h"
#include "core/arena.h"
#include "core/rng.h"
#include "core/tensor.h"
#include "gtest/gtest.h"

namespace sinklab {

// Owns the test's memory; every tensor is CPU fp32 (or i32) and lives as long as the pool.
class TensorPool {
 public:
  Tensor Zeros(std::initializer_list<int64_t> shape) {
    return arena_.Allocate(DType::kF32, shape);
  }
  // Normal(0, std) entries from Philox stream `stream` of seed 20240601: fixed, never zero.
  Tensor Random(std::initializer_list<int64_t> shape, uint64_t stream, float std = 1.0f) {
    Tensor t = Zeros(shape);
    FillNormal(t.f32(), t.numel(), 0.0f, std, /*seed=*/20240601, stream);
    return t;
  }
  Tensor Ints(std::initializer_list<int64_t> shape, const std::vector<int32_t>& values) {
    Tensor t = arena_.Allocate(DType::kI32, shape);
    SL_CHECK(static_cast<int64_t>(values.size()) == t.numel());
    std::memcpy(t.data(), values.data(), t.nbytes());
    return t;
  }
  Tensor Copy(const Tensor& x) {
    int64_t shape[Tensor::kMaxRank];
    for (int i = 0; i < x.rank(); ++i) shape[i] = x.dim(i);
    Tensor t = arena_.Allocate(x.dtype(), shape, x.rank());
    std::memcpy(t.data(), x.data(), x.nbytes());
    return t;
  }

 private:
  Arena arena_{Device::kCpu, size_t{1} << 20};
};

// sum_i out[i] * weights[i] in double: the scalar loss whose gradient w.r.t. out is weights.
inline double WeightedSum(const Tensor& out, const Tensor& weights) {
  SL_CHECK(out.numel() == weights.numel());
  double sum = 0;
  for (int64_t i = 0; i < out.numel(); ++i) {
    sum += static_cast<double>(out.f32()[i]) * weights.f32()[i];
  }
  return sum;
}

inline std::vector<float> Values(const Tensor& x) {
  return std::vector<float>(x.f32(), x.f32() + x.numel());
}

struct GradCheckOptions {
  int samples = 24;      // entries checked per tensor (all of them when the tensor is smaller)
  float eps = 1e-3f;     // central-difference step, in fp32
  double rtol = 1e-2;    // |numeric - analytic| <= atol + rtol * |analytic|
  double atol = 1e-3;

  static GradCheckOptions WithSamples(int samples) {
    GradCheckOptions options;
    options.samples = samples;
    return options;
  }
};

// Checks analytic[i] against (loss(x[i] + eps) - loss(x[i] - eps)) / (2 eps) for a fixed
// random subset of entries i of x (perturbed in place and restored). `loss` recomputes the
// forward pass from x.
inline void ExpectGradientMatches(const std::string& name, const Tensor& x,
                                  const Tensor& analytic, const std::function<double()>& loss,
                                  const GradCheckOptions& options = GradCheckOptions()) {
  SL_CHECK(x.numel() == analytic.numel());
  const int64_t n = x.numel();
  std::vector<int64_t> entries;
  if (n <= options.samples) {
    for (int64_t i = 0; i < n; ++i) entries.push_back(i);
  } else {
    Rng rng(/*seed=*/7, /*stream=*/static_cast<uint64_t>(n));
    for (int s = 0; s < options.samples; ++s) entries.push_back(rng.Below(n));
  }
  for (int64_t i : entries) {
    float* xi = x.f32() + i;
    const float saved = *xi;
    *xi = saved + options.eps;
    const double plus = loss();
    *xi = saved - options.eps;
    const double minus = loss();
    *xi = saved;
    // The step actually taken in fp32 (saved +- eps rounds).
    const double step = static_cast<double>(saved + options.eps) - (saved - options.eps);
    const double numeric = (plus - minus) / step;
    const double exact = analytic.f32()[i];
    EXPECT_NEAR(exact, numeric, options.atol + options.rtol * std::fabs(exact))
        << name << "[" << i << "]";
  }
}

// n token ids uniform in [0, vocab), Philox stream `stream` of seed 11.
inline std::vector<int32_t> RandomTokens(int64_t n, int64_t vocab, uint64_t stream) {
  Rng rng(11, stream);
  std::vector<int32_t> tokens(n);
  for (auto& t : tokens) t = static_cast<int32_t>(rng.Below(vocab));
  return tokens;
}

// The shape the model tests share: vocab 11, D 8, 2 layers, 2 heads (1 kv head), F 12.
inline ModelConfig TinyTestModelConfig() {
  ModelConfig config;
  config.set_vocab_size(11);
  config.set_d_model(8);
  config.set_n_layers(2);
  config.set_n_heads(2);
  config.set_n_kv_heads(1);
  config.set_ffn_hidden(12);
  return config;
}

}  // namespace sinklab

#endif  // SINKLAB_TESTS_LAYERS_GRADIENT_CHECK_H_

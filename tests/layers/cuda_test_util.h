// Helpers for the GPU kernel tests: each test builds the same random inputs on the host,
// runs the CUDA kernel and the CPU reference (layers/cpu/), and compares by relative error.
// Inputs uploaded as bf16 are rounded to bf16 on the host first, so the reference sees
// exactly what the GPU reads and only the kernels' arithmetic differs. Tests call
// SL_SKIP_WITHOUT_CUDA() first: without a GPU (CI) they are skipped with the reason.
#ifndef SINKLAB_TESTS_LAYERS_CUDA_TEST_UTIL_H_
#define SINKLAB_TESTS_LAYERS_CUDA_TEST_UTIL_H_

#if SINKLAB_WITH_CUDA

#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <vector>

#include "core/arena.h"
#include "core/device.h"
#include "core/rng.h"
#include "core/tensor.h"
#include "gtest/gtest.h"
#include "layers/cpu/cpu_backend.h"
#include "layers/cuda/cuda_backend.h"

#define SL_SKIP_WITHOUT_CUDA()                                              \
  do {                                                                      \
    if (!::sinklab::CudaAvailable()) GTEST_SKIP() << "no CUDA device visible"; \
  } while (0)

namespace sinklab {

// Relative errors the GPU tests accept (bf16 has an 8-bit significand: eps = 2^-8).
constexpr double kBf16RelTol = 1.5e-2;  // a bf16 output vs the fp32 reference
constexpr double kF32RelTol = 2e-3;     // an fp32 output computed from bf16 inputs

// Every element of a device f32/bf16 tensor as float.
inline std::vector<float> DeviceValues(const Tensor& t) {
  std::vector<float> v(t.numel());
  if (t.dtype() == DType::kBF16) {
    std::vector<BF16> bits(t.numel());
    CopyTensorToHost(bits.data(), t);
    for (int64_t i = 0; i < t.numel(); ++i) v[i] = BF16ToFloat(bits[i]);
  } else {
    CopyTensorToHost(v.data(), t);
  }
  return v;
}

// The spec of the attention kernel tests: scale 1/sqrt(d), sigmoid bias -log(keys), and
// clipped softmax with zeta > 1 so that both clips happen (rows near 1 clip at 1).
// ||got - want|| / ||want|| over two host vectors of equal size, in double.
inline double RelError(const std::vector<float>& got, const std::vector<float>& want) {
  double diff = 0, norm = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    diff += (static_cast<double>(got[i]) - want[i]) * (static_cast<double>(got[i]) - want[i]);
    norm += static_cast<double>(want[i]) * want[i];
  }
  return std::sqrt(diff / norm);
}

// Root mean square of an fp32 host tensor (the scale of random starting gradients).
inline double Rms(const Tensor& x) {
  double sum = 0;
  for (int64_t i = 0; i < x.numel(); ++i) sum += double{x.f32()[i]} * x.f32()[i];
  return std::sqrt(sum / x.numel());
}

// a - b elementwise (b an fp32 host tensor of a.size() elements): a kernel's increment.
inline std::vector<float> Minus(const std::vector<float>& a, const Tensor& b) {
  std::vector<float> diff(a.size());
  for (size_t i = 0; i < a.size(); ++i) diff[i] = a[i] - b.f32()[i];
  return diff;
}

inline AttentionSpec AttentionTestSpec(AttentionNormalizer normalizer, int64_t d, int64_t keys) {
  AttentionSpec spec;
  spec.normalizer = normalizer;
  spec.scale = 1.0f / std::sqrt(static_cast<float>(d));
  spec.sigmoid_bias = -std::log(static_cast<float>(keys));
  spec.clip_gamma = -0.03f;
  spec.clip_zeta = 1.03f;
  return spec;
}

// The attention normalizers every kernel test covers, and their names in test labels.
inline constexpr AttentionNormalizer kAllNormalizers[] = {
    AttentionNormalizer::kSoftmax,   AttentionNormalizer::kSoftmax1,
    AttentionNormalizer::kSinkLogit, AttentionNormalizer::kSoftpick,
    AttentionNormalizer::kSigmoid,   AttentionNormalizer::kClippedSoftmax,
};
inline const char* NormalizerName(AttentionNormalizer n) {
  switch (n) {
    case AttentionNormalizer::kSoftmax:
      return "Softmax";
    case AttentionNormalizer::kSoftmax1:
      return "Softmax1";
    case AttentionNormalizer::kSinkLogit:
      return "SinkLogit";
    case AttentionNormalizer::kSoftpick:
      return "Softpick";
    case AttentionNormalizer::kSigmoid:
      return "Sigmoid";
    case AttentionNormalizer::kClippedSoftmax:
      return "ClippedSoftmax";
  }
  return "Unknown";
}

class GpuTest {
 public:
  GpuTest() : gpu_(std::make_unique<CudaBackend>()) {}

  CudaBackend& gpu() { return *gpu_; }
  CpuBackend& cpu() { return cpu_; }

  // Normal(0, std) + mean entries (Philox stream `stream`), rounded to bf16 when
  // `round_bf16`; never all zeros.
  Tensor HostRandom(std::initializer_list<int64_t> shape, uint64_t stream, float std = 1.0f,
                    bool round_bf16 = true, float mean = 0.0f) {
    Tensor t = host_.Allocate(DType::kF32, shape);
    FillNormal(t.f32(), t.numel(), mean, std, /*seed=*/20261123, stream);
    if (round_bf16) {
      for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] = BF16ToFloat(FloatToBF16(t.f32()[i]));
    }
    return t;
  }
  Tensor HostZeros(DType dtype, std::initializer_list<int64_t> shape) {
    return host_.Allocate(dtype, shape);
  }
  Tensor HostCopy(const Tensor& x) {
    Tensor t = host_.Allocate(x.dtype(), Shape(x).data(), x.rank());
    std::memcpy(t.data(), x.data(), x.nbytes());
    return t;
  }

  // A device copy of a host tensor (f32 or i32), converted to `dtype` (f32 or bf16 for
  // floats; i32 stays i32).
  Tensor ToDevice(const Tensor& host, DType dtype) {
    Tensor d = device_.Allocate(dtype, Shape(host).data(), host.rank());
    if (dtype == DType::kBF16) {
      std::vector<BF16> staged(host.numel());
      for (int64_t i = 0; i < host.numel(); ++i) staged[i] = FloatToBF16(host.f32()[i]);
      gpu_->CopyFromHost(d, staged.data());
    } else {
      gpu_->CopyFromHost(d, host.data());
    }
    return d;
  }
  Tensor DeviceZeros(DType dtype, std::initializer_list<int64_t> shape) {
    return device_.Allocate(dtype, shape);
  }

  // Every element of a device f32/bf16 tensor as float.
  std::vector<float> ToHostF32(const Tensor& d) {
    std::vector<float> out(d.numel());
    if (d.dtype() == DType::kBF16) {
      std::vector<BF16> staged(d.numel());
      gpu_->CopyToHost(staged.data(), d);
      for (int64_t i = 0; i < d.numel(); ++i) out[i] = BF16ToFloat(staged[i]);
    } else {
      gpu_->CopyToHost(out.data(), d);
    }
    return out;
  }

  // ||got - want|| / ||want|| over all elements; want is a host f32 tensor (not all zero).
  static double RelError(const std::vector<float>& got, const Tensor& want) {
    EXPECT_EQ(static_cast<int64_t>(got.size()), want.numel());
    double diff = 0, norm = 0;
    for (int64_t i = 0; i < want.numel(); ++i) {
      const double w = want.f32()[i];
      diff += (got[i] - w) * (got[i] - w);
      norm += w * w;
    }
    EXPECT_GT(norm, 0.0) << "reference is all zeros: the comparison would be meaningless";
    return std::sqrt(diff / norm);
  }
  // Whether every element is finite.
  static bool AllFinite(const std::vector<float>& x) {
    for (float v : x) if (!std::isfinite(v)) return false;
    return true;
  }

 private:
  static std::vector<int64_t> Shape(const Tensor& x) {
    std::vector<int64_t> shape(x.rank());
    for (int i = 0; i < x.rank(); ++i) shape[i] = x.dim(i);
    return shape;
  }
  std::unique_ptr<CudaBackend> gpu_;
  CpuBackend cpu_;
  Arena host_{Device::kCpu, size_t{16} << 20};
  Arena device_{Device::kCuda, size_t{64} << 20};
};

}  // namespace sinklab

#endif  // SINKLAB_WITH_CUDA
#endif  // SINKLAB_TESTS_LAYERS_CUDA_TEST_UTIL_H_

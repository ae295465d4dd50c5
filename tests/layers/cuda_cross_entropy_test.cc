// The CUDA cross-entropy (layers/cuda/cross_entropy.cu) against the CPU reference: losses and
// lse, the overwriting backward out of place and in place over the logits, the fused
// forward-backward, ignored targets
// (-1), odd vocabularies (rows not 16-byte aligned), large logits, fp32 logits, and the
// documented handling of targets outside [-1, V).
#if SINKLAB_WITH_CUDA

#include <cmath>
#include <cstdint>
#include <ostream>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "tests/layers/cuda_test_util.h"

namespace sinklab {
namespace {

// Targets [rows] uniform in [0, vocab), every 5th row ignored (-1).
Tensor Targets(GpuTest& t, int64_t rows, int64_t vocab) {
  Tensor targets = t.HostZeros(DType::kI32, {rows});
  std::mt19937 rng(17);
  for (int64_t i = 0; i < rows; ++i) {
    targets.i32()[i] = i % 5 == 2 ? -1 : static_cast<int32_t>(rng() % vocab);
  }
  return targets;
}

struct CrossEntropyShape {
  int64_t rows, vocab;
};
void PrintTo(const CrossEntropyShape& s, std::ostream* os) {
  *os << s.rows << " rows, V " << s.vocab;
}

class CudaCrossEntropyTest : public ::testing::TestWithParam<CrossEntropyShape> {};

TEST_P(CudaCrossEntropyTest, ForwardAndBackwardMatchTheCpu) {
  SL_SKIP_WITHOUT_CUDA();
  const CrossEntropyShape s = GetParam();
  GpuTest t;
  const Tensor logits = t.HostRandom({s.rows, s.vocab}, 1, 3.0f);
  const Tensor targets = Targets(t, s.rows, s.vocab);
  const float dloss = 1.0f / static_cast<float>(s.rows);
  Tensor losses = t.HostZeros(DType::kF32, {s.rows}), lse = t.HostZeros(DType::kF32, {s.rows});
  Tensor dlogits = t.HostZeros(DType::kF32, {s.rows, s.vocab});
  t.cpu().CrossEntropyForward(losses, lse, logits, targets);
  t.cpu().CrossEntropyBackward(dlogits, logits, lse, targets, dloss);

  const Tensor g_logits = t.ToDevice(logits, DType::kBF16);
  const Tensor g_targets = t.ToDevice(targets, DType::kI32);
  const Tensor g_losses = t.DeviceZeros(DType::kF32, {s.rows});
  const Tensor g_lse = t.DeviceZeros(DType::kF32, {s.rows});
  t.gpu().CrossEntropyForward(g_losses, g_lse, g_logits, g_targets);
  EXPECT_LT(GpuTest::RelError(t.ToHostF32(g_lse), lse), kF32RelTol);
  const std::vector<float> got_losses = t.ToHostF32(g_losses);
  EXPECT_LT(GpuTest::RelError(got_losses, losses), kF32RelTol);

  // Out of place over a nonzero buffer (overwritten), then in place over the logits.
  const Tensor g_dlogits = t.ToDevice(t.HostRandom({s.rows, s.vocab}, 2), DType::kBF16);
  t.gpu().CrossEntropyBackward(g_dlogits, g_logits, g_lse, g_targets, dloss);
  const std::vector<float> got = t.ToHostF32(g_dlogits);
  EXPECT_LT(GpuTest::RelError(got, dlogits), kBf16RelTol);
  for (int64_t i = 0; i < s.rows; ++i) {
    if (targets.i32()[i] != -1) continue;
    EXPECT_EQ(got_losses[i], 0.0f) << "row " << i;
    for (int64_t v = 0; v < s.vocab; ++v) ASSERT_EQ(got[i * s.vocab + v], 0.0f) << "row " << i;
  }
  t.gpu().CrossEntropyBackward(g_logits, g_logits, g_lse, g_targets, dloss);
  EXPECT_EQ(t.ToHostF32(g_logits), got);
}

// The fused kernel (loss and gradient in one visit of each row, dloss = loss_scale / count
// from a device count) against the CPU reference of the same call, out of place and in
// place over the logits.
TEST_P(CudaCrossEntropyTest, FusedForwardBackwardMatchesTheCpu) {
  SL_SKIP_WITHOUT_CUDA();
  const CrossEntropyShape s = GetParam();
  GpuTest t;
  const Tensor logits = t.HostRandom({s.rows, s.vocab}, 5, 3.0f);
  const Tensor targets = Targets(t, s.rows, s.vocab);
  const float loss_scale = 0.6f;
  Tensor losses = t.HostZeros(DType::kF32, {s.rows}), lse = t.HostZeros(DType::kF32, {s.rows});
  Tensor dlogits = t.HostZeros(DType::kF32, {s.rows, s.vocab});
  t.cpu().CrossEntropyForwardBackward(losses, lse, dlogits, logits, targets, loss_scale);

  const Tensor g_logits = t.ToDevice(logits, DType::kBF16);
  const Tensor g_targets = t.ToDevice(targets, DType::kI32);
  const Tensor g_losses = t.DeviceZeros(DType::kF32, {s.rows});
  const Tensor g_lse = t.DeviceZeros(DType::kF32, {s.rows});
  const Tensor g_dlogits = t.ToDevice(t.HostRandom({s.rows, s.vocab}, 6), DType::kBF16);
  t.gpu().CrossEntropyForwardBackward(g_losses, g_lse, g_dlogits, g_logits, g_targets,
                                      loss_scale);
  EXPECT_LT(GpuTest::RelError(t.ToHostF32(g_lse), lse), kF32RelTol);
  EXPECT_LT(GpuTest::RelError(t.ToHostF32(g_losses), losses), kF32RelTol);
  const std::vector<float> got = t.ToHostF32(g_dlogits);
  EXPECT_LT(GpuTest::RelError(got, dlogits), kBf16RelTol);
  t.gpu().CrossEntropyForwardBackward(g_losses, g_lse, g_logits, g_logits, g_targets,
                                      loss_scale);
  EXPECT_EQ(t.ToHostF32(g_logits), got);
}

// 263 and 5003: odd rows (scalar head, packets, tail); 4096: aligned rows; 50304: GPT-2's
// padded vocabulary.
INSTANTIATE_TEST_SUITE_P(Shapes, CudaCrossEntropyTest,
                         ::testing::Values(CrossEntropyShape{37, 263},
                                           CrossEntropyShape{29, 5003},
                                           CrossEntropyShape{11, 4096},
                                           CrossEntropyShape{6, 50304}));

TEST(CudaCrossEntropyTest, LargeLogitsAndFp32LogitsMatchTheCpu) {
  SL_SKIP_WITHOUT_CUDA();
  GpuTest t;
  const int64_t rows = 23, vocab = 1001;
  for (DType dtype : {DType::kBF16, DType::kF32}) {
    // Logits around 40 (exp overflows fp32 without the max shift).
    const Tensor logits =
        t.HostRandom({rows, vocab}, 3, 4.0f, /*round_bf16=*/dtype == DType::kBF16, 40.0f);
    const Tensor targets = Targets(t, rows, vocab);
    Tensor losses = t.HostZeros(DType::kF32, {rows}), lse = t.HostZeros(DType::kF32, {rows});
    Tensor dlogits = t.HostZeros(DType::kF32, {rows, vocab});
    t.cpu().CrossEntropyForward(losses, lse, logits, targets);
    t.cpu().CrossEntropyBackward(dlogits, logits, lse, targets, 0.5f);

    const Tensor g_logits = t.ToDevice(logits, dtype);
    const Tensor g_targets = t.ToDevice(targets, DType::kI32);
    const Tensor g_losses = t.DeviceZeros(DType::kF32, {rows});
    const Tensor g_lse = t.DeviceZeros(DType::kF32, {rows});
    const Tensor g_dlogits = t.DeviceZeros(dtype, {rows, vocab});
    t.gpu().CrossEntropyForward(g_losses, g_lse, g_logits, g_targets);
    t.gpu().CrossEntropyBackward(g_dlogits, g_logits, g_lse, g_targets, 0.5f);
    const double tol = dtype == DType::kBF16 ? kBf16RelTol : kF32RelTol;
    EXPECT_LT(GpuTest::RelError(t.ToHostF32(g_lse), lse), kF32RelTol) << DTypeName(dtype);
    EXPECT_LT(GpuTest::RelError(t.ToHostF32(g_losses), losses), kF32RelTol) << DTypeName(dtype);
    EXPECT_LT(GpuTest::RelError(t.ToHostF32(g_dlogits), dlogits), tol) << DTypeName(dtype);
    // The fused call on the same rows (every 5th ignored: dloss = 0.5 / count).
    t.cpu().CrossEntropyForwardBackward(losses, lse, dlogits, logits, targets, 0.5f);
    t.gpu().CrossEntropyForwardBackward(g_losses, g_lse, g_dlogits, g_logits, g_targets, 0.5f);
    EXPECT_LT(GpuTest::RelError(t.ToHostF32(g_losses), losses), kF32RelTol) << DTypeName(dtype);
    EXPECT_LT(GpuTest::RelError(t.ToHostF32(g_dlogits), dlogits), tol) << DTypeName(dtype);
  }
}

// Documented GPU behaviour (the host does not check targets, to avoid synchronizing): a
// target outside [-1, V) gives that row a NaN loss and a NaN gradient row; other rows are
// unaffected.
TEST(CudaCrossEntropyTest, TargetsOutsideTheVocabularyPoisonOnlyTheirRow) {
  SL_SKIP_WITHOUT_CUDA();
  GpuTest t;
  const int64_t rows = 9, vocab = 263;
  const Tensor logits = t.HostRandom({rows, vocab}, 4, 2.0f);
  Tensor targets = Targets(t, rows, vocab);
  Tensor bad_targets = t.HostCopy(targets);
  bad_targets.i32()[3] = vocab;
  bad_targets.i32()[6] = -2;
  targets.i32()[3] = targets.i32()[6] = -1;  // the CPU reference ignores those rows instead
  Tensor losses = t.HostZeros(DType::kF32, {rows}), lse = t.HostZeros(DType::kF32, {rows});
  Tensor dlogits = t.HostZeros(DType::kF32, {rows, vocab});
  t.cpu().CrossEntropyForward(losses, lse, logits, targets);
  t.cpu().CrossEntropyBackward(dlogits, logits, lse, targets, 1.0f);

  const Tensor g_logits = t.ToDevice(logits, DType::kBF16);
  const Tensor g_targets = t.ToDevice(bad_targets, DType::kI32);
  const Tensor g_losses = t.DeviceZeros(DType::kF32, {rows});
  const Tensor g_lse = t.DeviceZeros(DType::kF32, {rows});
  const Tensor g_dlogits = t.DeviceZeros(DType::kBF16, {rows, vocab});
  t.gpu().CrossEntropyForward(g_losses, g_lse, g_logits, g_targets);
  t.gpu().CrossEntropyBackward(g_dlogits, g_logits, g_lse, g_targets, 1.0f);
  const std::vector<float> got_losses = t.ToHostF32(g_losses);
  const std::vector<float> got = t.ToHostF32(g_dlogits);
  for (int64_t i = 0; i < rows; ++i) {
    const bool bad = i == 3 || i == 6;
    EXPECT_EQ(std::isnan(got_losses[i]), bad) << "row " << i;
    if (!bad) {
      EXPECT_NEAR(got_losses[i], losses.f32()[i], 1e-3 * (1 + losses.f32()[i]));
    }
    for (int64_t v = 0; v < vocab; ++v) {
      const float g = got[i * vocab + v];
      if (bad) {
        ASSERT_TRUE(std::isnan(g)) << "row " << i;
      } else {
        const float want = dlogits.f32()[i * vocab + v];
        ASSERT_NEAR(g, want, 1e-2 * std::fabs(want) + 1e-4) << "row " << i << " v " << v;
      }
    }
  }
  EXPECT_LT(GpuTest::RelError(t.ToHostF32(g_lse), lse), kF32RelTol);
}

}  // namespace
}  // namespace sinklab

#endif  // SINKLAB_WITH_CUDA

// The fused CUDA attention (layers/cuda/attention_*.cu) against the CPU reference, for every
// normalizer: out, lse and probs of the forward (and clipped softmax's unclipped_values C);
// dq, dk, dv (and dsink_logit for the sink logit) of the backward, added to nonzero gradients
// (GradWrite::kAccumulate) and written over them (kAssign; dsink_logit still adds); GQA,
// MQA and MHA, with and without a KV-bias key, head dims 8..128, sequence lengths that are no
// multiple of any tile, and large logits that move the running max. Also: asking for probs changes
// neither out nor lse, the backward is bitwise deterministic, and empty gradient outputs are
// skipped.
#if SINKLAB_WITH_CUDA

#include <cmath>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/layers/cuda_test_util.h"

namespace sinklab {
namespace {

struct AttentionCase {
  const char* name;
  int64_t batch, seq, bias_keys, heads, kv_heads, d;
  float logit_std;  // std of the scores s_ij: q and k entries have std sqrt(logit_std)
};

const AttentionCase kCases[] = {
    {"Gqa_S37_D16", 2, 37, 0, 4, 2, 16, 1.0f},
    {"MhaBias_S50_D8", 2, 50, 1, 3, 3, 8, 1.0f},
    {"GqaBias_S45_D24", 2, 45, 1, 4, 2, 24, 1.0f},
    {"GqaBias_S130_D64", 2, 130, 1, 4, 2, 64, 1.0f},
    {"Mha_S37_D64", 2, 37, 0, 2, 2, 64, 1.0f},
    {"Gqa_S37_D64", 2, 37, 0, 2, 1, 64, 1.6f},
    {"Mha_S37_D128", 2, 37, 0, 2, 2, 128, 1.0f},
    {"MqaBias_S129_D128", 2, 129, 1, 4, 1, 128, 1.0f},
    {"GqaBias_S130_D128", 2, 130, 1, 4, 2, 128, 1.0f},
    {"GqaBias_S130_D64_LargeLogits", 2, 130, 1, 4, 2, 64, 3.0f},
    {"Mha_S200_D128_LargeLogits", 2, 200, 0, 2, 2, 128, 3.0f},
};

// AttentionTestSpec with zeta = 3 for clipped softmax (gamma -0.03): y = 3.03 sm - 0.03 clips
// at 1 from sm >= 0.34 and at 0 below sm = 0.0099, so every case (kCases and the two below)
// has rows whose weights clip both ways, next to many unclipped ones. Counted on the inputs of
// each case in double: 9 to 724 such rows per case, at least 1612 unclipped weights, no row
// without an unclipped weight; the test checks the count > 0 on the CPU weights.
AttentionSpec TestSpec(AttentionNormalizer normalizer, int64_t d, int64_t keys,
                       float clip_zeta = 3.0f) {
  AttentionSpec spec = AttentionTestSpec(normalizer, d, keys);
  spec.clip_zeta = clip_zeta;
  return spec;
}

// Rows of the weights probs [B, H, S, K] with a visible weight clipped to 0 and one clipped
// to 1 (clipped softmax; key j visible to query i iff j <= i + K - S).
int64_t RowsClippedBothWays(const Tensor& probs) {
  const int64_t S = probs.dim(2), K = probs.dim(3), rows = probs.numel() / K;
  int64_t count = 0;
  for (int64_t row = 0; row < rows; ++row) {
    const float* p = probs.f32() + row * K;
    bool zero = false, one = false;
    for (int64_t j = 0; j <= row % S + K - S; ++j) {
      zero |= p[j] == 0.0f;
      one |= p[j] == 1.0f;
    }
    count += zero && one;
  }
  return count;
}

// The inputs of one case, on the host (bf16-rounded) and on the device (bf16), and the CPU
// reference's forward.
struct Problem {
  Problem(GpuTest& t, const AttentionCase& c, AttentionNormalizer normalizer,
          float clip_zeta = 3.0f)
      : B(c.batch),
        S(c.seq),
        K(c.seq + c.bias_keys),
        H(c.heads),
        Hkv(c.kv_heads),
        d(c.d),
        spec(TestSpec(normalizer, c.d, K, clip_zeta)) {
    const float input_std = std::sqrt(c.logit_std);
    q = t.HostRandom({B, S, H, d}, 1, input_std);
    k = t.HostRandom({B, K, Hkv, d}, 2, input_std);
    v = t.HostRandom({B, K, Hkv, d}, 3);
    sink = t.HostRandom({H}, 4);
    dout = t.HostRandom({B, S, H, d}, 5);
    out = t.HostZeros(DType::kF32, {B, S, H, d});
    probs = t.HostZeros(DType::kF32, {B, H, S, K});
    lse = t.HostZeros(DType::kF32, {B, H, S});
    if (normalizer == AttentionNormalizer::kClippedSoftmax) {
      unclipped = t.HostZeros(DType::kF32, {B, S, H, d});
    }
    t.cpu().AttentionForward(out, probs, lse, unclipped, q, k, v, sink, spec);
    g_q = t.ToDevice(q, DType::kBF16);
    g_k = t.ToDevice(k, DType::kBF16);
    g_v = t.ToDevice(v, DType::kBF16);
    g_sink = t.ToDevice(sink, DType::kBF16);  // the parameter's compute copy
    g_dout = t.ToDevice(dout, DType::kBF16);
  }
  // A zeroed device tensor for clipped softmax's unclipped_values (empty for the others).
  Tensor DeviceUnclipped(GpuTest& t) const {
    if (unclipped.empty()) return Tensor();
    const Tensor x = t.DeviceZeros(DType::kF32, {B, S, H, d});
    t.gpu().Fill(x, 0.0f);
    return x;
  }
  // The GPU forward of the inputs: out (bf16), lse and clipped softmax's C (else empty).
  struct DeviceForward {
    Tensor out, lse, unclipped;
  };
  DeviceForward ForwardOnDevice(GpuTest& t) const {
    const DeviceForward f{t.DeviceZeros(DType::kBF16, {B, S, H, d}),
                          t.DeviceZeros(DType::kF32, {B, H, S}), DeviceUnclipped(t)};
    t.gpu().AttentionForward(f.out, Tensor(), f.lse, f.unclipped, g_q, g_k, g_v, g_sink, spec);
    return f;
  }
  // The CPU reference's gradients from zero (host, f32).
  struct HostGrads {
    Tensor dq, dk, dv;
  };
  HostGrads ReferenceGrads(GpuTest& t) const {
    const HostGrads g{t.HostZeros(DType::kF32, {B, S, H, d}),
                      t.HostZeros(DType::kF32, {B, K, Hkv, d}),
                      t.HostZeros(DType::kF32, {B, K, Hkv, d})};
    t.cpu().AttentionBackward(g.dq, g.dk, g.dv, Tensor(), dout, q, k, v, sink, out, unclipped,
                              probs, lse, spec, GradWrite::kAccumulate);
    return g;
  }
  const int64_t B, S, K, H, Hkv, d;
  const AttentionSpec spec;
  Tensor q, k, v, sink, dout, out, probs, lse;
  Tensor unclipped;  // clipped softmax's C [B, S, H, d] (else empty)
  Tensor g_q, g_k, g_v, g_sink, g_dout;
};

class CudaAttentionTest
    : public ::testing::TestWithParam<std::tuple<AttentionNormalizer, AttentionCase>> {};

TEST_P(CudaAttentionTest, ForwardAndBackwardMatchTheCpuReference) {
  SL_SKIP_WITHOUT_CUDA();
  const auto [normalizer, c] = GetParam();
  GpuTest t;
  const Problem p(t, c, normalizer);
  const int64_t B = p.B, S = p.S, K = p.K, H = p.H, Hkv = p.Hkv, d = p.d;

  // Forward, with probs.
  const Tensor g_out = t.DeviceZeros(DType::kBF16, {B, S, H, d});
  const Tensor g_probs = t.DeviceZeros(DType::kF32, {B, H, S, K});
  const Tensor g_lse = t.DeviceZeros(DType::kF32, {B, H, S});
  const Tensor g_unclipped = p.DeviceUnclipped(t);
  t.gpu().AttentionForward(g_out, g_probs, g_lse, g_unclipped, p.g_q, p.g_k, p.g_v, p.g_sink,
                           p.spec);
  const std::vector<float> out = t.ToHostF32(g_out), lse = t.ToHostF32(g_lse);
  EXPECT_TRUE(GpuTest::AllFinite(out) && GpuTest::AllFinite(lse));
  EXPECT_LT(GpuTest::RelError(out, p.out), kBf16RelTol);
  EXPECT_LT(GpuTest::RelError(lse, p.lse), kF32RelTol);
  EXPECT_LT(GpuTest::RelError(t.ToHostF32(g_probs), p.probs), kF32RelTol);
  const bool clipped = normalizer == AttentionNormalizer::kClippedSoftmax;
  std::vector<float> unclipped;
  if (clipped) {
    EXPECT_GT(RowsClippedBothWays(p.probs), 0);
    // fp32 sums of bf16-rounded weights (as out before its rounding): ~0.1% rms error.
    unclipped = t.ToHostF32(g_unclipped);
    EXPECT_TRUE(GpuTest::AllFinite(unclipped));
    EXPECT_LT(GpuTest::RelError(unclipped, p.unclipped), 5e-3) << "unclipped_values";
  }

  // Without probs: the same out, lse (and C), bit for bit.
  const Tensor g_out2 = t.DeviceZeros(DType::kBF16, {B, S, H, d});
  const Tensor g_lse2 = t.DeviceZeros(DType::kF32, {B, H, S});
  const Tensor g_unclipped2 = p.DeviceUnclipped(t);
  t.gpu().AttentionForward(g_out2, Tensor(), g_lse2, g_unclipped2, p.g_q, p.g_k, p.g_v, p.g_sink,
                           p.spec);
  EXPECT_EQ(t.ToHostF32(g_out2), out);
  EXPECT_EQ(t.ToHostF32(g_lse2), lse);
  if (clipped) {
    EXPECT_EQ(t.ToHostF32(g_unclipped2), unclipped);
  }

  // Backward. The reference's gradients from zero, then starting gradients of about their
  // size, so that both a missing += and a wrong increment show in the increment's error.
  const bool sink = normalizer == AttentionNormalizer::kSinkLogit;
  Tensor dq = t.HostZeros(DType::kF32, {B, S, H, d});
  Tensor dk = t.HostZeros(DType::kF32, {B, K, Hkv, d});
  Tensor dv = t.HostZeros(DType::kF32, {B, K, Hkv, d});
  Tensor dsink = t.HostZeros(DType::kF32, {H});
  t.cpu().AttentionBackward(dq, dk, dv, dsink, p.dout, p.q, p.k, p.v, p.sink, p.out, p.unclipped,
                            p.probs, p.lse, p.spec, GradWrite::kAccumulate);
  const Tensor dq0 = t.HostRandom({B, S, H, d}, 6, Rms(dq));
  const Tensor dk0 = t.HostRandom({B, K, Hkv, d}, 7, Rms(dk));
  const Tensor dv0 = t.HostRandom({B, K, Hkv, d}, 8, Rms(dv));
  const Tensor dsink0 = t.HostRandom({H}, 9, 1.0f, /*round_bf16=*/false);

  struct Grads {
    std::vector<float> dq, dk, dv, dsink;
  };
  const auto run_backward = [&](GradWrite write) {
    const Tensor g_dq = t.ToDevice(dq0, DType::kBF16), g_dk = t.ToDevice(dk0, DType::kBF16);
    const Tensor g_dv = t.ToDevice(dv0, DType::kBF16);
    const Tensor g_dsink = sink ? t.ToDevice(dsink0, DType::kF32) : Tensor();
    t.gpu().AttentionBackward(g_dq, g_dk, g_dv, g_dsink, p.g_dout, p.g_q, p.g_k, p.g_v, p.g_sink,
                              g_out, g_unclipped, Tensor(), g_lse, p.spec, write);
    return Grads{t.ToHostF32(g_dq), t.ToHostF32(g_dk), t.ToHostF32(g_dv),
                 sink ? t.ToHostF32(g_dsink) : std::vector<float>()};
  };
  const Grads got = run_backward(GradWrite::kAccumulate);
  EXPECT_TRUE(GpuTest::AllFinite(got.dq) && GpuTest::AllFinite(got.dk) &&
              GpuTest::AllFinite(got.dv));
  // (got - start) vs the reference's increment; the bf16 rounding of the sums adds
  // ~2^-9 |start + increment| / sqrt(3) ~ 0.2% of the increment.
  EXPECT_LT(GpuTest::RelError(Minus(got.dq, dq0), dq), kBf16RelTol) << "dq";
  EXPECT_LT(GpuTest::RelError(Minus(got.dk, dk0), dk), kBf16RelTol) << "dk";
  EXPECT_LT(GpuTest::RelError(Minus(got.dv, dv0), dv), kBf16RelTol) << "dv";
  if (sink) {
    // fp32 sums of terms whose D_i = dout_i . out_i reads the bf16 out: bf16-level error.
    EXPECT_LT(GpuTest::RelError(Minus(got.dsink, dsink0), dsink), kBf16RelTol) << "dsink";
  }

  // Deterministic: a second run from the same start is bitwise equal.
  const Grads again = run_backward(GradWrite::kAccumulate);
  EXPECT_EQ(again.dq, got.dq);
  EXPECT_EQ(again.dk, got.dk);
  EXPECT_EQ(again.dv, got.dv);
  EXPECT_EQ(again.dsink, got.dsink);

  // kAssign from the same nonzero start: every element of dq, dk, dv (KV-bias keys and each
  // GQA group included) is the reference's gradient from zero; dsink_logit still adds.
  const Grads assigned = run_backward(GradWrite::kAssign);
  EXPECT_LT(GpuTest::RelError(assigned.dq, dq), kBf16RelTol) << "assigned dq";
  EXPECT_LT(GpuTest::RelError(assigned.dk, dk), kBf16RelTol) << "assigned dk";
  EXPECT_LT(GpuTest::RelError(assigned.dv, dv), kBf16RelTol) << "assigned dv";
  if (sink) {
    EXPECT_LT(GpuTest::RelError(Minus(assigned.dsink, dsink0), dsink), kBf16RelTol)
        << "assigned dsink";
  }
}

INSTANTIATE_TEST_SUITE_P(NormalizersAndShapes, CudaAttentionTest,
                         ::testing::Combine(::testing::ValuesIn(kAllNormalizers),
                                            ::testing::ValuesIn(kCases)),
                         [](const ::testing::TestParamInfo<CudaAttentionTest::ParamType>& info) {
                           return absl::StrCat(NormalizerName(std::get<0>(info.param)), "_",
                                               std::get<1>(info.param).name);
                         });

// fp32 tensors (as tests and optimizers may pass) take the same kernels.
TEST(CudaAttentionF32Test, Fp32TensorsMatchTheCpuReference) {
  SL_SKIP_WITHOUT_CUDA();
  const AttentionCase c{"GqaBias_S70_D32", 2, 70, 1, 4, 2, 32, 1.0f};
  for (AttentionNormalizer normalizer : kAllNormalizers) {
    SCOPED_TRACE(NormalizerName(normalizer));
    GpuTest t;
    const Problem p(t, c, normalizer);
    const int64_t B = p.B, S = p.S, K = p.K, H = p.H, Hkv = p.Hkv, d = p.d;
    const Tensor g_q = t.ToDevice(p.q, DType::kF32), g_k = t.ToDevice(p.k, DType::kF32);
    const Tensor g_v = t.ToDevice(p.v, DType::kF32), g_dout = t.ToDevice(p.dout, DType::kF32);
    const Tensor g_sink = t.ToDevice(p.sink, DType::kF32);
    const Tensor g_out = t.DeviceZeros(DType::kF32, {B, S, H, d});
    const Tensor g_lse = t.DeviceZeros(DType::kF32, {B, H, S});
    const Tensor g_unclipped = p.DeviceUnclipped(t);
    t.gpu().AttentionForward(g_out, Tensor(), g_lse, g_unclipped, g_q, g_k, g_v, g_sink, p.spec);
    EXPECT_LT(GpuTest::RelError(t.ToHostF32(g_out), p.out), kF32RelTol);
    EXPECT_LT(GpuTest::RelError(t.ToHostF32(g_lse), p.lse), kF32RelTol);
    if (!p.unclipped.empty()) {
      EXPECT_GT(RowsClippedBothWays(p.probs), 0);
      EXPECT_LT(GpuTest::RelError(t.ToHostF32(g_unclipped), p.unclipped), kF32RelTol);
    }

    Tensor dq = t.HostZeros(DType::kF32, {B, S, H, d});
    Tensor dk = t.HostZeros(DType::kF32, {B, K, Hkv, d});
    Tensor dv = t.HostZeros(DType::kF32, {B, K, Hkv, d});
    t.cpu().AttentionBackward(dq, dk, dv, Tensor(), p.dout, p.q, p.k, p.v, p.sink, p.out,
                              p.unclipped, p.probs, p.lse, p.spec, GradWrite::kAccumulate);
    const Tensor g_dq = t.DeviceZeros(DType::kF32, {B, S, H, d});
    const Tensor g_dk = t.DeviceZeros(DType::kF32, {B, K, Hkv, d});
    const Tensor g_dv = t.DeviceZeros(DType::kF32, {B, K, Hkv, d});
    t.gpu().Fill(g_dq, 0.0f);
    t.gpu().Fill(g_dk, 0.0f);
    t.gpu().Fill(g_dv, 0.0f);
    t.gpu().AttentionBackward(g_dq, g_dk, g_dv, Tensor(), g_dout, g_q, g_k, g_v, g_sink, g_out,
                              g_unclipped, Tensor(), g_lse, p.spec, GradWrite::kAccumulate);
    EXPECT_LT(GpuTest::RelError(t.ToHostF32(g_dq), dq), kF32RelTol);
    EXPECT_LT(GpuTest::RelError(t.ToHostF32(g_dk), dk), kF32RelTol);
    EXPECT_LT(GpuTest::RelError(t.ToHostF32(g_dv), dv), kF32RelTol);
  }
}

// Empty gradient outputs are skipped; the others are what the full backward gives.
TEST(CudaAttentionSkipTest, EmptyGradientsAreSkipped) {
  SL_SKIP_WITHOUT_CUDA();
  const AttentionCase c{"GqaBias_S37_D64", 2, 37, 1, 4, 2, 64, 1.0f};
  GpuTest t;
  const Problem p(t, c, AttentionNormalizer::kSinkLogit);
  const int64_t B = p.B, S = p.S, K = p.K, H = p.H, Hkv = p.Hkv, d = p.d;
  const Tensor g_out = t.DeviceZeros(DType::kBF16, {B, S, H, d});
  const Tensor g_lse = t.DeviceZeros(DType::kF32, {B, H, S});
  t.gpu().AttentionForward(g_out, Tensor(), g_lse, Tensor(), p.g_q, p.g_k, p.g_v, p.g_sink, p.spec);
  const auto zeros = [&](std::initializer_list<int64_t> shape, DType dtype) {
    const Tensor x = t.DeviceZeros(dtype, shape);
    t.gpu().Fill(x, 0.0f);
    return x;
  };
  const Tensor dq = zeros({B, S, H, d}, DType::kBF16), dk = zeros({B, K, Hkv, d}, DType::kBF16);
  const Tensor dv = zeros({B, K, Hkv, d}, DType::kBF16), dsink = zeros({H}, DType::kF32);
  t.gpu().AttentionBackward(dq, dk, dv, dsink, p.g_dout, p.g_q, p.g_k, p.g_v, p.g_sink, g_out,
                            Tensor(), Tensor(), g_lse, p.spec, GradWrite::kAccumulate);
  const Tensor dq_only = zeros({B, S, H, d}, DType::kBF16);
  t.gpu().AttentionBackward(dq_only, Tensor(), Tensor(), Tensor(), p.g_dout, p.g_q, p.g_k, p.g_v,
                            p.g_sink, g_out, Tensor(), Tensor(), g_lse, p.spec,
                            GradWrite::kAccumulate);
  const Tensor dv_only = zeros({B, K, Hkv, d}, DType::kBF16);
  t.gpu().AttentionBackward(Tensor(), Tensor(), dv_only, Tensor(), p.g_dout, p.g_q, p.g_k, p.g_v,
                            p.g_sink, g_out, Tensor(), Tensor(), g_lse, p.spec,
                            GradWrite::kAccumulate);
  EXPECT_EQ(t.ToHostF32(dq_only), t.ToHostF32(dq));
  EXPECT_EQ(t.ToHostF32(dv_only), t.ToHostF32(dv));
}

// Clipped softmax: the dq and the dk/dv passes each take their row sums from the forward's
// unclipped_values (no hand-off between them), so dk and dv alone (dq not wanted) equal those
// of the full backward bit for bit, on both the tensor-core (d = 64) and the generic (d = 24)
// paths.
TEST(CudaAttentionSkipTest, ClippedSoftmaxDkvAloneMatchesTheFullBackward) {
  SL_SKIP_WITHOUT_CUDA();
  for (const AttentionCase& c : {AttentionCase{"GqaBias_S150_D64", 2, 150, 1, 4, 2, 64, 1.0f},
                                 AttentionCase{"GqaBias_S45_D24", 2, 45, 1, 4, 2, 24, 1.0f}}) {
    SCOPED_TRACE(c.name);
    GpuTest t;
    const Problem p(t, c, AttentionNormalizer::kClippedSoftmax);
    const int64_t B = p.B, S = p.S, K = p.K, H = p.H, Hkv = p.Hkv, d = p.d;
    const Problem::DeviceForward f = p.ForwardOnDevice(t);
    const Tensor &g_out = f.out, &g_lse = f.lse, &g_unclipped = f.unclipped;
    const auto zeros = [&](std::initializer_list<int64_t> shape) {
      const Tensor x = t.DeviceZeros(DType::kBF16, shape);
      t.gpu().Fill(x, 0.0f);
      return x;
    };
    const Tensor dq = zeros({B, S, H, d}), dk = zeros({B, K, Hkv, d}), dv = zeros({B, K, Hkv, d});
    t.gpu().AttentionBackward(dq, dk, dv, Tensor(), p.g_dout, p.g_q, p.g_k, p.g_v, p.g_sink, g_out,
                              g_unclipped, Tensor(), g_lse, p.spec, GradWrite::kAccumulate);
    const Tensor dk_alone = zeros({B, K, Hkv, d}), dv_alone = zeros({B, K, Hkv, d});
    t.gpu().AttentionBackward(Tensor(), dk_alone, dv_alone, Tensor(), p.g_dout, p.g_q, p.g_k, p.g_v,
                              p.g_sink, g_out, g_unclipped, Tensor(), g_lse, p.spec,
                              GradWrite::kAccumulate);
    EXPECT_EQ(t.ToHostF32(dk_alone), t.ToHostF32(dk));
    EXPECT_EQ(t.ToHostF32(dv_alone), t.ToHostF32(dv));
    // A missing or misplaced row sum would still agree between the two: dk against the CPU.
    EXPECT_LT(GpuTest::RelError(t.ToHostF32(dk_alone), p.ReferenceGrads(t).dk), kBf16RelTol);
  }
}

// Clipped softmax at zeta = 1 (the default): y = (zeta - gamma) sm + gamma is exactly 1 where
// sm = 1, so a row's only visible key (query 0 without a bias key) has its weight clipped at
// 1 and the row no gradient: ds = sm (0 - D) with D = dout . C = 0. The backward must see
// the same sm = 1 as the forward (an exponent rounded just below 0 counts the weight as
// unclipped and gives query 0 a gradient of (zeta - gamma) dp k_0), on the tensor-core
// (d = 64) and the generic (d = 24) paths; 16 (b, h) first rows each.
TEST(CudaAttentionClippedTest, AtZetaOneARowWithOneKeyHasNoGradient) {
  SL_SKIP_WITHOUT_CUDA();
  for (const AttentionCase& c : {AttentionCase{"Gqa_S37_D64", 2, 37, 0, 8, 2, 64, 1.0f},
                                 AttentionCase{"Gqa_S37_D24", 2, 37, 0, 8, 2, 24, 1.0f}}) {
    SCOPED_TRACE(c.name);
    GpuTest t;
    const Problem p(t, c, AttentionNormalizer::kClippedSoftmax, /*clip_zeta=*/1.0f);
    const int64_t B = p.B, S = p.S, K = p.K, H = p.H, Hkv = p.Hkv, d = p.d;
    const Problem::DeviceForward f = p.ForwardOnDevice(t);
    const Tensor dq = t.DeviceZeros(DType::kBF16, {B, S, H, d});
    const Tensor dk = t.DeviceZeros(DType::kBF16, {B, K, Hkv, d});
    const Tensor dv = t.DeviceZeros(DType::kBF16, {B, K, Hkv, d});
    t.gpu().AttentionBackward(dq, dk, dv, Tensor(), p.g_dout, p.g_q, p.g_k, p.g_v, p.g_sink, f.out,
                              f.unclipped, Tensor(), f.lse, p.spec, GradWrite::kAssign);
    const std::vector<float> got_dq = t.ToHostF32(dq);
    int64_t first_rows_with_gradient = 0;
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t h = 0; h < H; ++h) {
        const float* row = got_dq.data() + (b * S * H + h) * d;  // [b, 0, h, :]
        bool nonzero = false;
        for (int64_t c = 0; c < d; ++c) nonzero |= row[c] != 0.0f;
        first_rows_with_gradient += nonzero;
      }
    }
    EXPECT_EQ(first_rows_with_gradient, 0);
    const Problem::HostGrads want = p.ReferenceGrads(t);
    EXPECT_LT(GpuTest::RelError(got_dq, want.dq), kBf16RelTol) << "dq";
    EXPECT_LT(GpuTest::RelError(t.ToHostF32(dk), want.dk), kBf16RelTol) << "dk";
    EXPECT_LT(GpuTest::RelError(t.ToHostF32(dv), want.dv), kBf16RelTol) << "dv";
  }
}

}  // namespace
}  // namespace sinklab

#endif  // SINKLAB_WITH_CUDA

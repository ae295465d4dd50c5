// cuDNN's fused attention path of CudaBackend (layers/cuda/cudnn_attention.h; specs with
// allow_library_kernel, what model.attention.kernel AUTO gives): a probe that builds the
// forward and backward plans of one small shape and prints cuDNN's message if a descriptor is
// refused; for softmax, softmax1 and the sink logit, each without and with the KV bias key,
// forward out and lse, and the backward's increments of dq, dk, dv, dsink
// (GradWrite::kAccumulate) and its dq, dk, dv written over nonzero ones (kAssign), against the
// CPU reference at odd and tile-multiple lengths, MHA and GQA, head dims 64 and 128; sinklab's
// kernels against cuDNN on a larger shape (kAssign); the variants cuDNN does not run, and specs
// that do not allow it, keep sinklab's kernels.
#if SINKLAB_WITH_CUDA

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/layers/cuda_test_util.h"
#if SINKLAB_WITH_CUDNN
#include "layers/cuda/cudnn_attention.h"
#endif

namespace sinklab {
namespace {

#if SINKLAB_WITH_CUDNN
#define SL_SKIP_WITHOUT_CUDNN() (void)0
#else
#define SL_SKIP_WITHOUT_CUDNN() GTEST_SKIP() << "sinklab was built without cuDNN"
#endif

struct CudnnCase {
  const char* name;
  int64_t batch, seq, heads, kv_heads, d;
};

// A host f32 tensor [n] holding `values` (a reference for GpuTest::RelError).
Tensor HostTensorOf(GpuTest& t, const std::vector<float>& values) {
  Tensor x = t.HostZeros(DType::kF32, {static_cast<int64_t>(values.size())});
  for (size_t i = 0; i < values.size(); ++i) x.f32()[i] = values[i];
  return x;
}

// Softmax attention that may run cuDNN's kernels (model.attention.kernel AUTO).
AttentionSpec SoftmaxSpec(int64_t d, int64_t keys) {
  AttentionSpec spec = AttentionTestSpec(AttentionNormalizer::kSoftmax, d, keys);
  spec.allow_library_kernel = true;
  return spec;
}

// The normalizers cuDNN runs: softmax itself, and softmax1 and the sink logit, whose virtual
// logit is folded into cuDNN softmax's out and lse.
constexpr AttentionNormalizer kCudnnNormalizers[] = {
    AttentionNormalizer::kSoftmax, AttentionNormalizer::kSoftmax1, AttentionNormalizer::kSinkLogit};

AttentionSpec CudnnSpec(AttentionNormalizer n, int64_t d, int64_t keys) {
  AttentionSpec spec = AttentionTestSpec(n, d, keys);
  spec.allow_library_kernel = true;
  return spec;
}

// Sink logits near a row's log-sum-exp (~log S), so the virtual key takes a visible share.
Tensor HostSinkLogits(GpuTest& t, AttentionNormalizer n, int64_t heads, int64_t seq) {
  if (n != AttentionNormalizer::kSinkLogit) return Tensor();
  return t.HostRandom({heads}, 18, 1.0f, true, std::log(static_cast<float>(seq)));
}

// First on purpose: on the first device run, this tells which descriptor cuDNN refused.
TEST(CudaCudnnAttentionTest, ProbeBuildsTheForwardAndBackwardPlans) {
  SL_SKIP_WITHOUT_CUDA();
  SL_SKIP_WITHOUT_CUDNN();
  GpuTest t;
  const int64_t B = 2, S = 128, H = 4, d = 64;
  const Tensor q = t.DeviceZeros(DType::kBF16, {B, S, H, d});
  const Tensor k = t.DeviceZeros(DType::kBF16, {B, S, H, d});
  const AttentionSpec spec = SoftmaxSpec(d, S);
#if SINKLAB_WITH_CUDNN
  std::printf("cuDNN %zu (built against %d)\n", cudnnGetVersion(), CUDNN_VERSION);
#endif
  for (const bool backward : {false, true}) {
    std::string why;
    const bool built = t.gpu().UsesCudnnAttention(q, k, spec, backward, &why);
    std::printf("cuDNN %s plan for B=%ld S=%ld H=%ld d=%ld: %s%s\n",
                backward ? "backward" : "forward", B, S, H, d,
                built ? "built" : "REFUSED: ", why.c_str());
    EXPECT_TRUE(built) << (backward ? "backward: " : "forward: ") << why;
  }
}

// Forward out and lse, the backward's increments of dq, dk, dv and dsink (kAccumulate) and
// its dq, dk, dv written over nonzero ones (kAssign), against the CPU reference; K = S +
// bias_keys keys (key 0 the KV bias key when bias_keys = 1).
void ExpectCudnnMatchesTheCpuReference(const CudnnCase& c, AttentionNormalizer n,
                                       int64_t bias_keys) {
  const int64_t B = c.batch, S = c.seq, H = c.heads, Hkv = c.kv_heads, d = c.d;
  const int64_t K = S + bias_keys;
  GpuTest t;
  const AttentionSpec spec = CudnnSpec(n, d, K);
  const Tensor q = t.HostRandom({B, S, H, d}, 11), k = t.HostRandom({B, K, Hkv, d}, 12);
  const Tensor v = t.HostRandom({B, K, Hkv, d}, 13), dout = t.HostRandom({B, S, H, d}, 14);
  const Tensor sink = HostSinkLogits(t, n, H, S);
  Tensor out = t.HostZeros(DType::kF32, {B, S, H, d});
  Tensor probs = t.HostZeros(DType::kF32, {B, H, S, K});
  Tensor lse = t.HostZeros(DType::kF32, {B, H, S});
  t.cpu().AttentionForward(out, probs, lse, Tensor(), q, k, v, sink, spec);
  const Tensor g_q = t.ToDevice(q, DType::kBF16), g_k = t.ToDevice(k, DType::kBF16);
  const Tensor g_v = t.ToDevice(v, DType::kBF16), g_dout = t.ToDevice(dout, DType::kBF16);
  const Tensor g_sink = sink.empty() ? Tensor() : t.ToDevice(sink, DType::kF32);

  std::string why;
  ASSERT_TRUE(t.gpu().UsesCudnnAttention(g_q, g_k, spec, /*backward=*/false, &why)) << why;
  const Tensor g_out = t.DeviceZeros(DType::kBF16, {B, S, H, d});
  const Tensor g_lse = t.DeviceZeros(DType::kF32, {B, H, S});
  t.gpu().Fill(g_out, 7.0f);  // cuDNN must overwrite both
  t.gpu().Fill(g_lse, 7.0f);
  t.gpu().AttentionForward(g_out, Tensor(), g_lse, Tensor(), g_q, g_k, g_v, g_sink, spec);
  // A plan that fails to execute is refused from then on (and ours ran instead).
  EXPECT_TRUE(t.gpu().UsesCudnnAttention(g_q, g_k, spec, false, &why)) << "executing: " << why;
  const std::vector<float> got_out = t.ToHostF32(g_out), got_lse = t.ToHostF32(g_lse);
  EXPECT_TRUE(GpuTest::AllFinite(got_out) && GpuTest::AllFinite(got_lse));
  EXPECT_LT(GpuTest::RelError(got_out, out), kBf16RelTol) << "out";
  EXPECT_LT(GpuTest::RelError(got_lse, lse), kF32RelTol) << "lse";

  // Backward from nonzero gradients of about the increments' size: the increments (got -
  // start) must match the reference's (AttentionBackward adds; cuDNN alone would overwrite).
  const bool cudnn_backward = t.gpu().UsesCudnnAttention(g_q, g_k, spec, true, &why);
  // Every S % 128 == 0; without a bias key also S > 128 with S % 128 <= 16 (cuDNN on all but
  // the S % 128 lead rows).
  if (S % 128 == 0 || (bias_keys == 0 && S > 128 && S % 128 <= 16)) {
    EXPECT_TRUE(cudnn_backward) << why;
  }
  std::printf("%s %s%s backward ran %s%s\n", c.name, NormalizerName(n),
              bias_keys > 0 ? " + KV bias" : "",
              cudnn_backward ? "cuDNN" : "sinklab: ", cudnn_backward ? "" : why.c_str());
  Tensor dq = t.HostZeros(DType::kF32, {B, S, H, d});
  Tensor dk = t.HostZeros(DType::kF32, {B, K, Hkv, d});
  Tensor dv = t.HostZeros(DType::kF32, {B, K, Hkv, d});
  const Tensor dsink = sink.empty() ? Tensor() : t.HostZeros(DType::kF32, {H});
  t.cpu().AttentionBackward(dq, dk, dv, dsink, dout, q, k, v, sink, out, Tensor(), probs, lse, spec,
                            GradWrite::kAccumulate);
  const Tensor dq0 = t.HostRandom({B, S, H, d}, 15, Rms(dq));
  const Tensor dk0 = t.HostRandom({B, K, Hkv, d}, 16, Rms(dk));
  const Tensor dv0 = t.HostRandom({B, K, Hkv, d}, 17, Rms(dv));
  const Tensor g_dq = t.ToDevice(dq0, DType::kBF16), g_dk = t.ToDevice(dk0, DType::kBF16);
  const Tensor g_dv = t.ToDevice(dv0, DType::kBF16);
  const Tensor g_dsink = sink.empty() ? Tensor() : t.DeviceZeros(DType::kF32, {H});
  t.gpu().AttentionBackward(g_dq, g_dk, g_dv, g_dsink, g_dout, g_q, g_k, g_v, g_sink, g_out,
                            Tensor(), Tensor(), g_lse, spec, GradWrite::kAccumulate);
  if (cudnn_backward) {
    EXPECT_TRUE(t.gpu().UsesCudnnAttention(g_q, g_k, spec, true, &why)) << "executing: " << why;
  }
  const std::vector<float> got_dq = t.ToHostF32(g_dq), got_dk = t.ToHostF32(g_dk);
  const std::vector<float> got_dv = t.ToHostF32(g_dv);
  EXPECT_TRUE(GpuTest::AllFinite(got_dq) && GpuTest::AllFinite(got_dk) &&
              GpuTest::AllFinite(got_dv));
  EXPECT_LT(GpuTest::RelError(Minus(got_dq, dq0), dq), kBf16RelTol) << "dq";
  EXPECT_LT(GpuTest::RelError(Minus(got_dk, dk0), dk), kBf16RelTol) << "dk";
  EXPECT_LT(GpuTest::RelError(Minus(got_dv, dv0), dv), kBf16RelTol) << "dv";
  if (!sink.empty()) {
    EXPECT_LT(GpuTest::RelError(t.ToHostF32(g_dsink), dsink), kBf16RelTol) << "dsink";
  }

  // kAssign from the same nonzero start: cuDNN writes dq, dk, dv in place, every element
  // (with GQA, each kv head's sum over its group) the reference's gradient from zero.
  const Tensor a_dq = t.ToDevice(dq0, DType::kBF16), a_dk = t.ToDevice(dk0, DType::kBF16);
  const Tensor a_dv = t.ToDevice(dv0, DType::kBF16);
  t.gpu().AttentionBackward(a_dq, a_dk, a_dv, Tensor(), g_dout, g_q, g_k, g_v, g_sink, g_out,
                            Tensor(), Tensor(), g_lse, spec, GradWrite::kAssign);
  if (cudnn_backward) {
    EXPECT_TRUE(t.gpu().UsesCudnnAttention(g_q, g_k, spec, true, &why)) << "executing: " << why;
  }
  const std::vector<float> assigned_dq = t.ToHostF32(a_dq), assigned_dk = t.ToHostF32(a_dk);
  const std::vector<float> assigned_dv = t.ToHostF32(a_dv);
  EXPECT_TRUE(GpuTest::AllFinite(assigned_dq) && GpuTest::AllFinite(assigned_dk) &&
              GpuTest::AllFinite(assigned_dv));
  EXPECT_LT(GpuTest::RelError(assigned_dq, dq), kBf16RelTol) << "assigned dq";
  EXPECT_LT(GpuTest::RelError(assigned_dk, dk), kBf16RelTol) << "assigned dk";
  EXPECT_LT(GpuTest::RelError(assigned_dv, dv), kBf16RelTol) << "assigned dv";
}

// The KV bias with its key apart (Backend::AttentionForwardBiasApart and
// AttentionBackwardBiasApart) against the CPU reference on the prepended rows: out, lse, dq,
// dk and dv of the real keys (written over nonzero values), the bias key's gradients summed
// over b (added to nonzero ones) and dsink. Where cuDNN has no backward plan the forward
// declines, doing nothing.
void ExpectBiasApartMatchesTheCpuReference(const CudnnCase& c, AttentionNormalizer n) {
  const int64_t B = c.batch, S = c.seq, H = c.heads, Hkv = c.kv_heads, d = c.d, K = S + 1;
  GpuTest t;
  const AttentionSpec spec = CudnnSpec(n, d, K);
  const Tensor q = t.HostRandom({B, S, H, d}, 31), dout = t.HostRandom({B, S, H, d}, 36);
  const Tensor k_rows = t.HostRandom({B, S, Hkv, d}, 32), v_rows = t.HostRandom({B, S, Hkv, d}, 33);
  const Tensor k_bias = t.HostRandom({Hkv, d}, 34), v_bias = t.HostRandom({Hkv, d}, 35);
  const Tensor sink = HostSinkLogits(t, n, H, S);
  Tensor k = t.HostZeros(DType::kF32, {B, K, Hkv, d}), v = t.HostZeros(DType::kF32, {B, K, Hkv, d});
  t.cpu().PrependRows(k, k_bias, k_rows);
  t.cpu().PrependRows(v, v_bias, v_rows);
  Tensor out = t.HostZeros(DType::kF32, {B, S, H, d});
  Tensor probs = t.HostZeros(DType::kF32, {B, H, S, K});
  Tensor lse = t.HostZeros(DType::kF32, {B, H, S});
  t.cpu().AttentionForward(out, probs, lse, Tensor(), q, k, v, sink, spec);
  Tensor dq = t.HostZeros(DType::kF32, {B, S, H, d});
  Tensor dk = t.HostZeros(DType::kF32, {B, K, Hkv, d}),
         dv = t.HostZeros(DType::kF32, {B, K, Hkv, d});
  const Tensor dsink = sink.empty() ? Tensor() : t.HostZeros(DType::kF32, {H});
  t.cpu().AttentionBackward(dq, dk, dv, dsink, dout, q, k, v, sink, out, Tensor(), probs, lse, spec,
                            GradWrite::kAccumulate);
  // The reference split into the real keys' rows and the bias key's sum over b.
  Tensor dk_rows = t.HostZeros(DType::kF32, {B, S, Hkv, d}),
         dv_rows = t.HostZeros(DType::kF32, {B, S, Hkv, d});
  Tensor dk_bias = t.HostZeros(DType::kF32, {Hkv, d}), dv_bias = t.HostZeros(DType::kF32, {Hkv, d});
  t.cpu().PrependRowsBackward(dk_bias, dk_rows, dk);
  t.cpu().PrependRowsBackward(dv_bias, dv_rows, dv);

  const Tensor g_q = t.ToDevice(q, DType::kBF16), g_dout = t.ToDevice(dout, DType::kBF16);
  const Tensor g_k = t.ToDevice(k_rows, DType::kBF16), g_v = t.ToDevice(v_rows, DType::kBF16);
  const Tensor g_kb = t.ToDevice(k_bias, DType::kBF16), g_vb = t.ToDevice(v_bias, DType::kBF16);
  const Tensor g_sink = sink.empty() ? Tensor() : t.ToDevice(sink, DType::kF32);
  const Tensor g_out = t.DeviceZeros(DType::kBF16, {B, S, H, d});
  const Tensor g_lse = t.DeviceZeros(DType::kF32, {B, H, S});
  t.gpu().Fill(g_out, 7.0f);  // to be overwritten
  t.gpu().Fill(g_lse, 7.0f);
  // Taken where cuDNN's backward runs all S rows (with cuDNN <= 9.15: S % 128 == 0).
  if (!t.gpu().AttentionForwardBiasApart(g_out, g_lse, g_q, g_k, g_v, g_kb, g_vb, g_sink, spec)) {
    EXPECT_NE(S % 128, 0) << "declined a shape cuDNN's backward runs";
    EXPECT_EQ(t.ToHostF32(g_lse)[0], 7.0f) << "declined, yet wrote lse";
    std::printf("%s %s: no bias key apart\n", c.name, NormalizerName(n));
    return;
  }
  EXPECT_LT(GpuTest::RelError(t.ToHostF32(g_out), out), kBf16RelTol) << "out";
  EXPECT_LT(GpuTest::RelError(t.ToHostF32(g_lse), lse), kF32RelTol) << "lse";

  const Tensor g_dq = t.DeviceZeros(DType::kBF16, {B, S, H, d});
  const Tensor g_dk = t.DeviceZeros(DType::kBF16, {B, S, Hkv, d});
  const Tensor g_dv = t.DeviceZeros(DType::kBF16, {B, S, Hkv, d});
  for (const Tensor* grad : {&g_dq, &g_dk, &g_dv}) t.gpu().Fill(*grad, 7.0f);  // overwritten
  const Tensor dkb0 = t.HostRandom({Hkv, d}, 37, Rms(dk_bias));
  const Tensor dvb0 = t.HostRandom({Hkv, d}, 38, Rms(dv_bias));
  const Tensor g_dkb = t.ToDevice(dkb0, DType::kF32), g_dvb = t.ToDevice(dvb0, DType::kF32);
  const Tensor g_dsink = sink.empty() ? Tensor() : t.DeviceZeros(DType::kF32, {H});
  t.gpu().AttentionBackwardBiasApart(g_dq, g_dk, g_dv, g_dkb, g_dvb, g_dsink, g_dout, g_q, g_k, g_v,
                                     g_kb, g_vb, g_sink, g_out, g_lse, spec);
  EXPECT_LT(GpuTest::RelError(t.ToHostF32(g_dq), dq), kBf16RelTol) << "dq";
  EXPECT_LT(GpuTest::RelError(t.ToHostF32(g_dk), dk_rows), kBf16RelTol) << "dk";
  EXPECT_LT(GpuTest::RelError(t.ToHostF32(g_dv), dv_rows), kBf16RelTol) << "dv";
  EXPECT_LT(GpuTest::RelError(Minus(t.ToHostF32(g_dkb), dkb0), dk_bias), kBf16RelTol) << "dk'";
  EXPECT_LT(GpuTest::RelError(Minus(t.ToHostF32(g_dvb), dvb0), dv_bias), kBf16RelTol) << "dv'";
  if (!sink.empty()) {
    EXPECT_LT(GpuTest::RelError(t.ToHostF32(g_dsink), dsink), kBf16RelTol) << "dsink";
  }

  // The backward's own fallback (taken when cuDNN fails to run its plan; here forced by a spec
  // that does not allow cuDNN): our kernels on prepended copies, the same gradients.
  AttentionSpec ours = spec;
  ours.allow_library_kernel = false;
  for (const Tensor* grad : {&g_dq, &g_dk, &g_dv}) t.gpu().Fill(*grad, 7.0f);
  const Tensor f_dkb = t.ToDevice(dkb0, DType::kF32), f_dvb = t.ToDevice(dvb0, DType::kF32);
  t.gpu().AttentionBackwardBiasApart(g_dq, g_dk, g_dv, f_dkb, f_dvb, Tensor(), g_dout, g_q, g_k,
                                     g_v, g_kb, g_vb, g_sink, g_out, g_lse, ours);
  EXPECT_LT(GpuTest::RelError(t.ToHostF32(g_dq), dq), kBf16RelTol) << "fallback dq";
  EXPECT_LT(GpuTest::RelError(t.ToHostF32(g_dk), dk_rows), kBf16RelTol) << "fallback dk";
  EXPECT_LT(GpuTest::RelError(t.ToHostF32(g_dv), dv_rows), kBf16RelTol) << "fallback dv";
  EXPECT_LT(GpuTest::RelError(Minus(t.ToHostF32(f_dkb), dkb0), dk_bias), kBf16RelTol)
      << "fallback dk'";
  EXPECT_LT(GpuTest::RelError(Minus(t.ToHostF32(f_dvb), dvb0), dv_bias), kBf16RelTol)
      << "fallback dv'";
}

class CudaCudnnAttentionShapeTest : public ::testing::TestWithParam<CudnnCase> {};

TEST_P(CudaCudnnAttentionShapeTest, ForwardAndBackwardMatchTheCpuReference) {
  SL_SKIP_WITHOUT_CUDA();
  SL_SKIP_WITHOUT_CUDNN();
  for (const int64_t bias_keys : {0, 1}) {
    for (const AttentionNormalizer n : kCudnnNormalizers) {
      SCOPED_TRACE(absl::StrCat(NormalizerName(n), bias_keys > 0 ? " + KV bias" : ""));
      ExpectCudnnMatchesTheCpuReference(GetParam(), n, bias_keys);
    }
  }
}

TEST_P(CudaCudnnAttentionShapeTest, TheBiasKeyApartMatchesTheCpuReference) {
  SL_SKIP_WITHOUT_CUDA();
  SL_SKIP_WITHOUT_CUDNN();
  for (const AttentionNormalizer n : kCudnnNormalizers) {
    SCOPED_TRACE(NormalizerName(n));
    ExpectBiasApartMatchesTheCpuReference(GetParam(), n);
  }
}

const CudnnCase kCudnnCases[] = {
    {"Mha_S37_D64", 2, 37, 4, 4, 64},     {"Gqa_S37_D128", 2, 37, 4, 2, 128},
    {"Gqa_S100_D64", 2, 100, 4, 2, 64},   {"Mha_S100_D128", 2, 100, 4, 4, 128},
    {"Mha_S257_D64", 2, 257, 4, 4, 64},   {"Gqa_S257_D128", 2, 257, 4, 2, 128},
    {"Mha_S128_D64", 2, 128, 4, 4, 64},   {"Gqa_S256_D64", 2, 256, 4, 2, 64},
    {"Gqa_S128_D128", 2, 128, 4, 2, 128}, {"Mha_S256_D128", 2, 256, 4, 4, 128},
    // cuDNN's backward on all but the first S % 128 rows (4, 16; 17 too many: ours).
    {"Gqa_S260_D64", 2, 260, 4, 2, 64},   {"Mha_S144_D128", 2, 144, 4, 4, 128},
    {"Gqa_S145_D64", 2, 145, 4, 2, 64},
};

INSTANTIATE_TEST_SUITE_P(Shapes, CudaCudnnAttentionShapeTest, ::testing::ValuesIn(kCudnnCases),
                         [](const ::testing::TestParamInfo<CudnnCase>& info) {
                           return std::string(info.param.name);
                         });

void ExpectSinklabAndCudnnAgree(AttentionNormalizer n, int64_t bias_keys) {
  const int64_t B = 2, S = 512, H = 8, Hkv = 2, d = 64, K = S + bias_keys;
  GpuTest t;
  const AttentionSpec cudnn_spec = CudnnSpec(n, d, K);
  AttentionSpec sinklab_spec = cudnn_spec;
  sinklab_spec.allow_library_kernel = false;
  const Tensor g_q = t.ToDevice(t.HostRandom({B, S, H, d}, 21), DType::kBF16);
  const Tensor g_k = t.ToDevice(t.HostRandom({B, K, Hkv, d}, 22), DType::kBF16);
  const Tensor g_v = t.ToDevice(t.HostRandom({B, K, Hkv, d}, 23), DType::kBF16);
  const Tensor g_dout = t.ToDevice(t.HostRandom({B, S, H, d}, 24), DType::kBF16);
  const Tensor sink = HostSinkLogits(t, n, H, S);
  const Tensor g_sink = sink.empty() ? Tensor() : t.ToDevice(sink, DType::kF32);
  struct Result {
    std::vector<float> out, lse, dq, dk, dv, dsink;
  };
  const auto run = [&](const AttentionSpec& spec) {
    const Tensor out = t.DeviceZeros(DType::kBF16, {B, S, H, d});
    const Tensor lse = t.DeviceZeros(DType::kF32, {B, H, S});
    const Tensor dq = t.DeviceZeros(DType::kBF16, {B, S, H, d});
    const Tensor dk = t.DeviceZeros(DType::kBF16, {B, K, Hkv, d});
    const Tensor dv = t.DeviceZeros(DType::kBF16, {B, K, Hkv, d});
    const Tensor dsink = t.DeviceZeros(DType::kF32, {H});
    for (const Tensor* grad : {&dq, &dk, &dv}) t.gpu().Fill(*grad, 7.0f);  // to be overwritten
    t.gpu().AttentionForward(out, Tensor(), lse, Tensor(), g_q, g_k, g_v, g_sink, spec);
    t.gpu().AttentionBackward(dq, dk, dv, sink.empty() ? Tensor() : dsink, g_dout, g_q, g_k, g_v,
                              g_sink, out, Tensor(), Tensor(), lse, spec, GradWrite::kAssign);
    return Result{t.ToHostF32(out), t.ToHostF32(lse), t.ToHostF32(dq),
                  t.ToHostF32(dk),  t.ToHostF32(dv),  t.ToHostF32(dsink)};
  };
  std::string why;
  EXPECT_FALSE(t.gpu().UsesCudnnAttention(g_q, g_k, sinklab_spec, false, &why));
  const Result ours = run(sinklab_spec);
  ASSERT_TRUE(t.gpu().UsesCudnnAttention(g_q, g_k, cudnn_spec, false, &why)) << why;
  ASSERT_TRUE(t.gpu().UsesCudnnAttention(g_q, g_k, cudnn_spec, true, &why)) << why;
  const Result cudnn = run(cudnn_spec);
  for (const bool backward : {false, true}) {
    EXPECT_TRUE(t.gpu().UsesCudnnAttention(g_q, g_k, cudnn_spec, backward, &why))
        << "executing: " << why;
  }
  // Both are bf16-rounded results of fp32 sums: about twice the single-kernel error.
  constexpr double kTol = 2 * kBf16RelTol;
  EXPECT_LT(GpuTest::RelError(cudnn.out, HostTensorOf(t, ours.out)), kTol) << "out";
  EXPECT_LT(GpuTest::RelError(cudnn.lse, HostTensorOf(t, ours.lse)), kF32RelTol) << "lse";
  EXPECT_LT(GpuTest::RelError(cudnn.dq, HostTensorOf(t, ours.dq)), kTol) << "dq";
  EXPECT_LT(GpuTest::RelError(cudnn.dk, HostTensorOf(t, ours.dk)), kTol) << "dk";
  EXPECT_LT(GpuTest::RelError(cudnn.dv, HostTensorOf(t, ours.dv)), kTol) << "dv";
  if (!sink.empty()) {
    EXPECT_LT(GpuTest::RelError(cudnn.dsink, HostTensorOf(t, ours.dsink)), kTol) << "dsink";
  }
}

// Ours and cuDNN's on one larger GQA shape, without and with the KV bias key: the same out,
// lse and gradients up to bf16 noise, the gradients written (kAssign, as in training) over
// nonzero values.
TEST(CudaCudnnAttentionTest, SinklabAndCudnnAgreeOnALargerShape) {
  SL_SKIP_WITHOUT_CUDA();
  SL_SKIP_WITHOUT_CUDNN();
  for (const int64_t bias_keys : {0, 1}) {
    for (const AttentionNormalizer n : kCudnnNormalizers) {
      SCOPED_TRACE(absl::StrCat(NormalizerName(n), bias_keys > 0 ? " + KV bias" : ""));
      ExpectSinklabAndCudnnAgree(n, bias_keys);
    }
  }
}

// Where cuDNN is allowed, what it does not run (softpick, sigmoid, clipped softmax, more than
// one extra key, fp32) keeps ours; so does softmax when the spec does not allow it (kernel:
// SINKLAB). One KV-bias key does run cuDNN.
TEST(CudaCudnnAttentionTest, OtherVariantsKeepSinklabKernels) {
  SL_SKIP_WITHOUT_CUDA();
  GpuTest t;
  const int64_t B = 2, S = 128, H = 4, d = 64;
  const Tensor q = t.DeviceZeros(DType::kBF16, {B, S, H, d});
  const Tensor k = t.DeviceZeros(DType::kBF16, {B, S, H, d});
  const Tensor k_bias = t.DeviceZeros(DType::kBF16, {B, S + 1, H, d});
  const Tensor k_two_extra = t.DeviceZeros(DType::kBF16, {B, S + 2, H, d});
  const Tensor q32 = t.DeviceZeros(DType::kF32, {B, S, H, d});
  const Tensor k32 = t.DeviceZeros(DType::kF32, {B, S, H, d});
  for (const bool backward : {false, true}) {
    for (const AttentionNormalizer n :
         {AttentionNormalizer::kSoftpick, AttentionNormalizer::kSigmoid,
          AttentionNormalizer::kClippedSoftmax}) {
      AttentionSpec spec = AttentionTestSpec(n, d, S);
      spec.allow_library_kernel = true;
      EXPECT_FALSE(t.gpu().UsesCudnnAttention(q, k, spec, backward)) << NormalizerName(n);
    }
    EXPECT_TRUE(t.gpu().UsesCudnnAttention(q, k_bias, SoftmaxSpec(d, S + 1), backward));
    EXPECT_FALSE(t.gpu().UsesCudnnAttention(q, k_two_extra, SoftmaxSpec(d, S + 2), backward));
    EXPECT_FALSE(t.gpu().UsesCudnnAttention(q32, k32, SoftmaxSpec(d, S), backward));
  }
  AttentionSpec sinklab = SoftmaxSpec(d, S);
  sinklab.allow_library_kernel = false;
  EXPECT_FALSE(t.gpu().UsesCudnnAttention(q, k, sinklab, false));
}

}  // namespace
}  // namespace sinklab

#endif  // SINKLAB_WITH_CUDA

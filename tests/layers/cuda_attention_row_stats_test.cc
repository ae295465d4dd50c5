// The CUDA attention row statistics (layers/cuda/attention_row_stats.cu) against the CPU
// reference (CpuBackend::AttentionRowStats over its probs) for every normalizer, field by
// field: GQA, MQA and MHA, prefix tokens, a KV-bias key, head dims 16..128, sequence lengths
// that are no multiple of the 32-row tile, and large logits. Also: the GPU row statistics
// equal the CPU reduction of the GPU's own probs (the same normalizer code, so they agree to
// summation order), and fields that do not apply (no bias key, no prefix) are exactly 0.
#if SINKLAB_WITH_CUDA

#include <algorithm>
#include <cmath>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/layers/cuda_test_util.h"

namespace sinklab {
namespace {

struct RowStatsCase {
  const char* name;
  int64_t batch, prefix, seq, bias_keys, heads, kv_heads, d;  // seq: S rows, prefix included
  float logit_std;  // std of the scores s_ij: q and k entries have std sqrt(logit_std)
};

const RowStatsCase kCases[] = {
    {"Gqa_P0_S37_D16", 2, 0, 37, 0, 4, 2, 16, 1.0f},
    {"GqaBias_P3_S45_D24", 2, 3, 45, 1, 4, 2, 24, 1.0f},
    {"MqaBias_P2_S70_D64", 2, 2, 70, 1, 4, 1, 64, 1.0f},
    {"Mha_P1_S33_D128", 1, 1, 33, 0, 3, 3, 128, 1.0f},
    {"GqaBias_P1_S130_D64_LargeLogits", 2, 1, 130, 1, 4, 2, 64, 3.0f},
};

const char* FieldName(int f) {
  switch (f) {
    case kRowDataTokenZero:
      return "data token 0";
    case kRowBiasKey:
      return "bias key";
    case kRowPrefixMass:
      return "prefix mass";
    case kRowTotalMass:
      return "total mass";
    case kRowEntropy:
      return "entropy";
  }
  return "unknown";
}

// Field f of every row of a row-statistics array [rows * R].
std::vector<float> Field(const float* rows, int64_t count, int f) {
  std::vector<float> out(count);
  for (int64_t r = 0; r < count; ++r) out[r] = rows[r * kAttentionRowStatFields + f];
  return out;
}

class CudaAttentionRowStatsTest
    : public ::testing::TestWithParam<std::tuple<AttentionNormalizer, RowStatsCase>> {};

TEST_P(CudaAttentionRowStatsTest, MatchTheCpuReferenceFieldByField) {
  SL_SKIP_WITHOUT_CUDA();
  const auto [normalizer, c] = GetParam();
  GpuTest t;
  const int64_t B = c.batch, S = c.seq, P = c.prefix, K = c.seq + c.bias_keys;
  const int64_t H = c.heads, Hkv = c.kv_heads, d = c.d, R = kAttentionRowStatFields;
  const AttentionSpec spec = AttentionTestSpec(normalizer, d, K);
  const float input_std = std::sqrt(c.logit_std);
  // Host inputs rounded to bf16 (what the GPU reads) and the CPU reference.
  const Tensor q = t.HostRandom({B, S, H, d}, 1, input_std);
  const Tensor k = t.HostRandom({B, K, Hkv, d}, 2, input_std);
  const Tensor v = t.HostRandom({B, K, Hkv, d}, 3);
  const Tensor sink = t.HostRandom({H}, 4);
  const Tensor out = t.HostZeros(DType::kF32, {B, S, H, d});
  const Tensor probs = t.HostZeros(DType::kF32, {B, H, S, K});
  const Tensor lse = t.HostZeros(DType::kF32, {B, H, S});
  const Tensor want = t.HostZeros(DType::kF32, {B, H, S, R});
  const bool clipped = normalizer == AttentionNormalizer::kClippedSoftmax;
  const Tensor unclipped = clipped ? t.HostZeros(DType::kF32, {B, S, H, d}) : Tensor();
  t.cpu().AttentionForward(out, probs, lse, unclipped, q, k, v, sink, spec);
  t.cpu().AttentionRowStats(want, probs, q, k, lse, sink, spec, P);

  // GPU: the fused forward (no probs), then the row statistics from its lse.
  const Tensor g_q = t.ToDevice(q, DType::kBF16), g_k = t.ToDevice(k, DType::kBF16);
  const Tensor g_v = t.ToDevice(v, DType::kBF16), g_sink = t.ToDevice(sink, DType::kBF16);
  const Tensor g_out = t.DeviceZeros(DType::kBF16, {B, S, H, d});
  const Tensor g_lse = t.DeviceZeros(DType::kF32, {B, H, S});
  const Tensor g_rows = t.DeviceZeros(DType::kF32, {B, H, S, R});
  const Tensor g_unclipped = clipped ? t.DeviceZeros(DType::kF32, {B, S, H, d}) : Tensor();
  t.gpu().Fill(g_rows, NAN);  // every entry must be written
  t.gpu().AttentionForward(g_out, Tensor(), g_lse, g_unclipped, g_q, g_k, g_v, g_sink, spec);
  t.gpu().AttentionRowStats(g_rows, Tensor(), g_q, g_k, g_lse, g_sink, spec, P);
  const std::vector<float> got = t.ToHostF32(g_rows);
  ASSERT_TRUE(GpuTest::AllFinite(got));

  const int64_t count = B * H * S;
  for (int f = 0; f < R; ++f) {
    const std::vector<float> got_f = Field(got.data(), count, f);
    const bool absent = (f == kRowBiasKey && c.bias_keys == 0) || (f == kRowPrefixMass && P == 0);
    if (absent) {
      for (int64_t r = 0; r < count; ++r) ASSERT_EQ(got_f[r], 0.0f) << FieldName(f) << " " << r;
      continue;
    }
    const std::vector<float> want_f = Field(want.f32(), count, f);
    const Tensor want_t(const_cast<float*>(want_f.data()), DType::kF32, Device::kCpu, {count});
    EXPECT_LT(GpuTest::RelError(got_f, want_t), kF32RelTol) << FieldName(f);
  }
  // Prefix rows never see data token 0.
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t h = 0; h < H; ++h) {
      for (int64_t i = 0; i < P; ++i) {
        EXPECT_EQ(got[((b * H + h) * S + i) * R + kRowDataTokenZero], 0.0f) << b << h << i;
      }
    }
  }

  // The CPU reduction of the GPU's own probs: the same weights, so only the summation
  // order (and f32 vs double) differs.
  const Tensor g_probs = t.DeviceZeros(DType::kF32, {B, H, S, K});
  t.gpu().AttentionForward(g_out, g_probs, g_lse, g_unclipped, g_q, g_k, g_v, g_sink, spec);
  const std::vector<float> gpu_probs = t.ToHostF32(g_probs);
  const Tensor host_probs = t.HostZeros(DType::kF32, {B, H, S, K});
  std::copy(gpu_probs.begin(), gpu_probs.end(), host_probs.f32());
  const Tensor from_gpu_probs = t.HostZeros(DType::kF32, {B, H, S, R});
  t.cpu().AttentionRowStats(from_gpu_probs, host_probs, q, k, lse, sink, spec, P);
  for (int f = 0; f < R; ++f) {
    const std::vector<float> got_f = Field(got.data(), count, f);
    for (int64_t r = 0; r < count; ++r) {
      const float w = from_gpu_probs.f32()[r * R + f];
      EXPECT_NEAR(got_f[r], w, 1e-5 * (1.0f + std::fabs(w))) << FieldName(f) << " row " << r;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    AllNormalizers, CudaAttentionRowStatsTest,
    ::testing::Combine(::testing::ValuesIn(kAllNormalizers), ::testing::ValuesIn(kCases)),
    [](const ::testing::TestParamInfo<CudaAttentionRowStatsTest::ParamType>& info) {
      return absl::StrCat(NormalizerName(std::get<0>(info.param)), "_",
                          std::get<1>(info.param).name);
    });

}  // namespace
}  // namespace sinklab

#endif  // SINKLAB_WITH_CUDA

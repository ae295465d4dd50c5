// The CUDA row gathers and scatters (layers/cuda/embedding.cu, prepend_rows.cu) against the
// CPU reference: gathers and copies must be exact, scatters (which accumulate into nonzero
// gradients) match within the fp32 tolerance, and the embedding backward is bit-for-bit
// deterministic on batches full of repeated tokens.
#if SINKLAB_WITH_CUDA

#include <cmath>
#include <cstdint>
#include <cstring>
#include <ostream>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "tests/layers/cuda_test_util.h"

namespace sinklab {
namespace {

// n token ids in [0, vocab) (fixed seed); about `hot_percent`% of them are `hot_id`, a
// very frequent token, so repeated ids are the rule.
Tensor Tokens(GpuTest& t, int64_t n, int64_t vocab, uint32_t seed, int hot_percent = 0,
              int32_t hot_id = 0) {
  Tensor ids = t.HostZeros(DType::kI32, {n});
  std::mt19937 rng(seed);
  for (int64_t i = 0; i < n; ++i) {
    const bool hot = static_cast<int>(rng() % 100) < hot_percent;
    ids.i32()[i] = hot ? hot_id : static_cast<int32_t>(rng() % vocab);
  }
  return ids;
}

std::vector<float> Values(const Tensor& host) {
  return std::vector<float>(host.f32(), host.f32() + host.numel());
}

struct EmbeddingShape {
  int64_t tokens, vocab, dim;
  int hot_percent;  // share of the tokens that are one frequent id
};
void PrintTo(const EmbeddingShape& s, std::ostream* os) {
  *os << s.tokens << " tokens, V " << s.vocab << ", D " << s.dim << ", " << s.hot_percent
      << "% one id";
}

class CudaEmbeddingTest : public ::testing::TestWithParam<EmbeddingShape> {};

TEST_P(CudaEmbeddingTest, ForwardCopiesTheCpuRowsExactly) {
  SL_SKIP_WITHOUT_CUDA();
  const EmbeddingShape s = GetParam();
  GpuTest t;
  const Tensor table = t.HostRandom({s.vocab, s.dim}, 1);
  const Tensor ids = Tokens(t, s.tokens, s.vocab, 2, s.hot_percent, 7);
  Tensor out = t.HostZeros(DType::kF32, {s.tokens, s.dim});
  t.cpu().EmbeddingForward(out, ids, table);

  const Tensor g_out = t.DeviceZeros(DType::kBF16, {s.tokens, s.dim});
  t.gpu().EmbeddingForward(g_out, t.ToDevice(ids, DType::kI32),
                           t.ToDevice(table, DType::kBF16));
  EXPECT_EQ(t.ToHostF32(g_out), Values(out));  // a bf16 copy of bf16-rounded rows
}

TEST_P(CudaEmbeddingTest, BackwardAddsTheCpuScatter) {
  SL_SKIP_WITHOUT_CUDA();
  const EmbeddingShape s = GetParam();
  GpuTest t;
  const Tensor dout = t.HostRandom({s.tokens, s.dim}, 3);
  const Tensor ids = Tokens(t, s.tokens, s.vocab, 4, s.hot_percent, 7);
  const Tensor dtable0 = t.HostRandom({s.vocab, s.dim}, 5, 1.0f, /*round_bf16=*/false);
  Tensor dtable = t.HostCopy(dtable0);
  t.cpu().EmbeddingBackward(dtable, dout, ids);

  const Tensor g_dtable = t.ToDevice(dtable0, DType::kF32);
  t.gpu().EmbeddingBackward(g_dtable, t.ToDevice(dout, DType::kBF16),
                            t.ToDevice(ids, DType::kI32));
  EXPECT_LT(GpuTest::RelError(t.ToHostF32(g_dtable), dtable), kF32RelTol);
  // The rows no token names keep their starting values exactly.
  std::vector<bool> used(s.vocab, false);
  for (int64_t i = 0; i < s.tokens; ++i) used[ids.i32()[i]] = true;
  const std::vector<float> got = t.ToHostF32(g_dtable);
  for (int64_t v = 0; v < s.vocab; ++v) {
    if (used[v]) continue;
    for (int64_t j = 0; j < s.dim; ++j) {
      ASSERT_EQ(got[v * s.dim + j], dtable0.f32()[v * s.dim + j]) << "row " << v;
    }
  }
}

// dim 96: 16-byte packets; dim 100: scalar. With 60% one id, that id's run crosses ~90 of
// the backward's 32-entry chunks (head + tail pieces merged); 16384 tokens over 71 ids are
// the byte-level corpus of the benchmark at its width (every run crosses chunks).
INSTANTIATE_TEST_SUITE_P(Shapes, CudaEmbeddingTest,
                         ::testing::Values(EmbeddingShape{87, 263, 96, 0},
                                           EmbeddingShape{87, 263, 100, 30},
                                           EmbeddingShape{5000, 263, 96, 60},
                                           EmbeddingShape{3001, 5003, 40, 10},
                                           EmbeddingShape{129, 50257, 16, 20},
                                           EmbeddingShape{16384, 71, 768, 0}));

TEST(CudaEmbeddingTest, BackwardIsBitwiseDeterministic) {
  SL_SKIP_WITHOUT_CUDA();
  GpuTest t;
  const int64_t n = 4099, vocab = 300, dim = 96;
  const Tensor dout = t.HostRandom({n, dim}, 6);
  const Tensor ids = Tokens(t, n, vocab, 8, /*hot_percent=*/50, /*hot_id=*/3);
  const Tensor dtable0 = t.HostRandom({vocab, dim}, 9, 1.0f, /*round_bf16=*/false);
  const Tensor g_dout = t.ToDevice(dout, DType::kBF16), g_ids = t.ToDevice(ids, DType::kI32);
  std::vector<float> runs[2];
  for (std::vector<float>& run : runs) {
    const Tensor g_dtable = t.ToDevice(dtable0, DType::kF32);
    t.gpu().EmbeddingBackward(g_dtable, g_dout, g_ids);
    run = t.ToHostF32(g_dtable);
  }
  ASSERT_EQ(runs[0].size(), runs[1].size());
  EXPECT_EQ(std::memcmp(runs[0].data(), runs[1].data(), runs[0].size() * sizeof(float)), 0);
  EXPECT_NE(runs[0], Values(dtable0));  // the scatter did change the table
}

// Documented GPU behaviour (the host does not check ids, to avoid synchronizing): an id
// outside [0, V) gives a zero row forward and contributes nothing backward.
TEST(CudaEmbeddingTest, OutOfRangeIdsGiveZeroRowsAndNoGradient) {
  SL_SKIP_WITHOUT_CUDA();
  GpuTest t;
  const int64_t vocab = 50, dim = 24;
  Tensor ids = t.HostZeros(DType::kI32, {5});
  const int32_t values[5] = {3, -1, 50, 1 << 30, 3};
  std::memcpy(ids.data(), values, sizeof(values));
  const Tensor table = t.HostRandom({vocab, dim}, 10);
  const Tensor g_out = t.DeviceZeros(DType::kBF16, {5, dim});
  const Tensor g_ids = t.ToDevice(ids, DType::kI32);
  t.gpu().EmbeddingForward(g_out, g_ids, t.ToDevice(table, DType::kBF16));
  const std::vector<float> out = t.ToHostF32(g_out);
  for (int64_t j = 0; j < dim; ++j) {
    EXPECT_EQ(out[j], table.f32()[3 * dim + j]);
    EXPECT_EQ(out[4 * dim + j], table.f32()[3 * dim + j]);
    for (int row = 1; row <= 3; ++row) EXPECT_EQ(out[row * dim + j], 0.0f) << "row " << row;
  }

  const Tensor dout = t.HostRandom({5, dim}, 11);
  const Tensor dtable0 = t.HostRandom({vocab, dim}, 12, 1.0f, /*round_bf16=*/false);
  const Tensor g_dtable = t.ToDevice(dtable0, DType::kF32);
  t.gpu().EmbeddingBackward(g_dtable, t.ToDevice(dout, DType::kBF16), g_ids);
  const std::vector<float> dtable = t.ToHostF32(g_dtable);
  for (int64_t v = 0; v < vocab; ++v) {
    for (int64_t j = 0; j < dim; ++j) {
      const float start = dtable0.f32()[v * dim + j];
      const float want = v == 3 ? start + dout.f32()[j] + dout.f32()[4 * dim + j] : start;
      EXPECT_NEAR(dtable[v * dim + j], want, 1e-5f * (1.0f + std::fabs(want)));
    }
  }
}

// ---- PrependRows -------------------------------------------------------------------------

struct PrependShape {
  int64_t batch, prefix_rows, rows, channels;
};
void PrintTo(const PrependShape& s, std::ostream* os) {
  *os << "B " << s.batch << ", P " << s.prefix_rows << ", S " << s.rows << ", C " << s.channels;
}

class CudaPrependRowsTest : public ::testing::TestWithParam<PrependShape> {};

TEST_P(CudaPrependRowsTest, ForwardCopiesExactlyInEveryDtype) {
  SL_SKIP_WITHOUT_CUDA();
  const PrependShape s = GetParam();
  GpuTest t;
  const Tensor prefix = t.HostRandom({s.prefix_rows, s.channels}, 1);
  const Tensor inp = t.HostRandom({s.batch, s.rows, s.channels}, 2);
  Tensor out = t.HostZeros(DType::kF32, {s.batch, s.prefix_rows + s.rows, s.channels});
  t.cpu().PrependRows(out, prefix, inp);
  for (DType dtype : {DType::kBF16, DType::kF32}) {
    const Tensor g_out = t.DeviceZeros(dtype, {s.batch, s.prefix_rows + s.rows, s.channels});
    t.gpu().PrependRows(g_out, t.ToDevice(prefix, dtype), t.ToDevice(inp, dtype));
    EXPECT_EQ(t.ToHostF32(g_out), Values(out)) << DTypeName(dtype);
  }
  // i32 rows (the model prepends "no target" ids to the targets), trailing dims flattened.
  Tensor ids = t.HostZeros(DType::kI32, {s.batch, s.rows, s.channels});
  Tensor no_target = t.HostZeros(DType::kI32, {s.prefix_rows, s.channels});
  for (int64_t i = 0; i < ids.numel(); ++i) ids.i32()[i] = static_cast<int32_t>(i * 7 + 1);
  for (int64_t i = 0; i < no_target.numel(); ++i) {
    no_target.i32()[i] = -1 - static_cast<int32_t>(i);
  }
  Tensor want = t.HostZeros(DType::kI32, {s.batch, s.prefix_rows + s.rows, s.channels});
  t.cpu().PrependRows(want, no_target, ids);
  const Tensor g_ids = t.DeviceZeros(DType::kI32, {s.batch, s.prefix_rows + s.rows, s.channels});
  t.gpu().PrependRows(g_ids, t.ToDevice(no_target, DType::kI32), t.ToDevice(ids, DType::kI32));
  std::vector<int32_t> got(g_ids.numel());
  t.gpu().CopyToHost(got.data(), g_ids);
  EXPECT_EQ(got, std::vector<int32_t>(want.i32(), want.i32() + want.numel()));
}

TEST_P(CudaPrependRowsTest, BackwardAddsTheCpuGradients) {
  SL_SKIP_WITHOUT_CUDA();
  const PrependShape s = GetParam();
  GpuTest t;
  const int64_t total = s.prefix_rows + s.rows;
  const Tensor dout = t.HostRandom({s.batch, total, s.channels}, 3);
  const Tensor dprefix0 = t.HostRandom({s.prefix_rows, s.channels}, 4, 1.0f, false);
  const Tensor dinp0 = t.HostRandom({s.batch, s.rows, s.channels}, 5);
  Tensor dprefix = t.HostCopy(dprefix0), dinp = t.HostCopy(dinp0);
  t.cpu().PrependRowsBackward(dprefix, dinp, dout);

  const Tensor g_dout = t.ToDevice(dout, DType::kBF16);
  const Tensor g_dprefix = t.ToDevice(dprefix0, DType::kF32);
  const Tensor g_dinp = t.ToDevice(dinp0, DType::kBF16);
  t.gpu().PrependRowsBackward(g_dprefix, g_dinp, g_dout);
  EXPECT_LT(GpuTest::RelError(t.ToHostF32(g_dprefix), dprefix), kF32RelTol);
  // dinp gets a copy added: exact up to the bf16 rounding of the sum.
  EXPECT_LT(GpuTest::RelError(t.ToHostF32(g_dinp), dinp), kBf16RelTol);

  // Either output alone (the other empty).
  const Tensor g_dprefix_only = t.ToDevice(dprefix0, DType::kF32);
  t.gpu().PrependRowsBackward(g_dprefix_only, Tensor(), g_dout);
  EXPECT_EQ(t.ToHostF32(g_dprefix_only), t.ToHostF32(g_dprefix));
  const Tensor g_dinp_only = t.ToDevice(dinp0, DType::kBF16);
  t.gpu().PrependRowsBackward(Tensor(), g_dinp_only, g_dout);
  EXPECT_EQ(t.ToHostF32(g_dinp_only), t.ToHostF32(g_dinp));
}

// channels 96: 16-byte units and packets; 5 (bf16 rows of 10 bytes): 2-byte units, scalar
// backward; one prefix row (KV bias) and several (sink tokens).
INSTANTIATE_TEST_SUITE_P(Shapes, CudaPrependRowsTest,
                         ::testing::Values(PrependShape{3, 2, 29, 96},
                                           PrependShape{2, 1, 37, 5},
                                           PrependShape{4, 4, 33, 200}));

}  // namespace
}  // namespace sinklab

#endif  // SINKLAB_WITH_CUDA

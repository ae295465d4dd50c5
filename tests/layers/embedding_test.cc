// Embedding: rows are gathered, and the table gradient (with repeated tokens) matches finite
// differences.
#include "gtest/gtest.h"
#include "layers/cpu/cpu_backend.h"
#include "layers/embedding.h"
#include "tests/layers/gradient_check.h"

namespace sinklab {
namespace {

TEST(EmbeddingTest, ForwardGathersTableRows) {
  CpuBackend backend;
  Arena arena(Device::kCpu, size_t{1} << 20);
  TensorPool pool;
  Embedding embed(&backend, &arena, /*vocab=*/5, /*d_model=*/3);
  FillNormal(embed.table()->master.f32(), 15, 0.0f, 1.0f, 1, 0);
  Tensor tokens = pool.Ints({4}, {4, 0, 4, 2}), out = pool.Zeros({4, 3});
  embed.Forward(out, tokens);
  const int expected_rows[] = {4, 0, 4, 2};
  for (int i = 0; i < 4; ++i) {
    for (int j = 0; j < 3; ++j) {
      EXPECT_EQ(out.f32()[i * 3 + j], embed.table()->master.f32()[expected_rows[i] * 3 + j]);
    }
  }
}

// L = sum(out * R): exact linear map, so eps 1e-3 and tolerance 1e-3 + 1e-2 |grad| are loose.
TEST(EmbeddingTest, BackwardMatchesFiniteDifferencesWithRepeatedTokens) {
  CpuBackend backend;
  Arena arena(Device::kCpu, size_t{1} << 20);
  TensorPool pool;
  Embedding embed(&backend, &arena, /*vocab=*/6, /*d_model=*/4);
  FillNormal(embed.table()->master.f32(), 24, 0.0f, 1.0f, 1, 0);
  Tensor tokens = pool.Ints({2, 3}, {1, 3, 1, 5, 1, 0});  // token 1 three times, 2 and 4 never
  Tensor out = pool.Zeros({2, 3, 4}), r = pool.Random({2, 3, 4}, 2);
  auto loss = [&] {
    embed.Forward(out, tokens);
    return WeightedSum(out, r);
  };
  loss();
  embed.Backward(r, tokens);
  ExpectGradientMatches("dtable", embed.table()->master, embed.table()->grad, loss,
                        GradCheckOptions::WithSamples(100));
  for (int j = 0; j < 4; ++j) EXPECT_EQ(embed.table()->grad.f32()[2 * 4 + j], 0.0f);
}

}  // namespace
}  // namespace sinklab

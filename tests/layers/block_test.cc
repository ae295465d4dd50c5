// Block: the pre-norm decoder layer's gradients (input and all nine parameters) by finite
// differences, with grouped-query attention.
#include "gtest/gtest.h"
#include "layers/block.h"
#include "layers/cpu/cpu_backend.h"
#include "tests/layers/gradient_check.h"

namespace sinklab {
namespace {

// L = sum(out * R); tolerance 1e-3 + 1e-2 |grad| (weights N(0, 0.5), norms N(1, 0.2),
// unit-normal x and R: |grad| is O(1)). eps 1e-2: L sums 64 outputs of magnitude ~3 whose
// fp32 rounding (~1e-6 in L) would be ~5e-3 of noise in a quotient with eps 1e-3, while the
// truncation error at 1e-2 is ~2e-4.
TEST(BlockTest, BackwardMatchesFiniteDifferences) {
  CpuBackend backend;
  Arena arena(Device::kCpu, size_t{1} << 20);
  TensorPool pool;
  ModelConfig config;
  config.set_d_model(8);
  config.set_n_heads(2);
  config.set_n_kv_heads(1);
  config.set_ffn_hidden(12);
  const int64_t B = 2, T = 4;
  Rope rope(&backend, &arena, T, /*head_dim=*/4, config.rope_theta());
  Block block(&backend, &arena, /*index=*/3, config, B, T, &rope);
  uint64_t stream = 30;
  for (Parameter* p : block.parameters()) {
    const bool norm = p->kind == ParamKind::kNorm;
    FillNormal(p->master.f32(), p->master.numel(), norm ? 1.0f : 0.0f, norm ? 0.2f : 0.5f, 3,
               stream++);
  }
  Tensor x = pool.Random({B, T, 8}, 1), y = pool.Zeros({B, T, 8});
  Tensor r = pool.Random({B, T, 8}, 2), dx = pool.Zeros({B, T, 8});
  auto loss = [&] {
    block.Forward(y, x);
    return WeightedSum(y, r);
  };
  loss();
  block.Backward(dx, r, x);
  GradCheckOptions options = GradCheckOptions::WithSamples(64);
  options.eps = 1e-2f;
  ExpectGradientMatches("dx", x, dx, loss, options);
  options.samples = 24;
  for (Parameter* p : block.parameters()) {
    ExpectGradientMatches(p->name, p->master, p->grad, loss, options);
  }
}

TEST(BlockTest, ParametersAreNamedInCheckpointOrder) {
  CpuBackend backend;
  Arena arena(Device::kCpu, size_t{1} << 20);
  ModelConfig config;
  config.set_d_model(8);
  config.set_n_heads(2);
  config.set_ffn_hidden(12);
  Rope rope(&backend, &arena, 2, 4, config.rope_theta());
  Block block(&backend, &arena, /*index=*/5, config, 1, 2, &rope);
  std::vector<std::string> names;
  for (Parameter* p : block.parameters()) names.push_back(p->name);
  EXPECT_EQ(names, (std::vector<std::string>{
                       "layers.5.attn_norm", "layers.5.attn.wq", "layers.5.attn.wk",
                       "layers.5.attn.wv", "layers.5.attn.wo", "layers.5.ffn_norm",
                       "layers.5.ffn.w_gate", "layers.5.ffn.w_up", "layers.5.ffn.w_down"}));
}

}  // namespace
}  // namespace sinklab

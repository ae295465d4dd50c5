// The host-side work tables of the multi-tensor GPU optimizers (optim/multi_tensor.h): chunks
// and tiles cover every element exactly once in tensor order, Muon shape groups follow the
// wide orientation; and OptimizerSet::ClipGradients on the CPU is ClipGradNorm.
#include "optim/multi_tensor.h"

#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "core/rng.h"
#include "gtest/gtest.h"
#include "optim/clip.h"
#include "optim/optimizer_set.h"
#include "tests/optim/parameter_store.h"

namespace sinklab {
namespace {

TEST(MultiTensorTest, ChunksCoverEveryElementOnceInTensorOrder) {
  const std::vector<int64_t> numels = {1, 7, 16, 17, 33, 5};
  constexpr int64_t kChunk = 8;
  const ChunkTable table = BuildChunkTable(numels, kChunk);
  ASSERT_EQ(table.chunk_begin.size(), numels.size() + 1);
  EXPECT_EQ(table.chunk_begin.front(), 0);
  EXPECT_EQ(table.chunk_begin.back(), static_cast<int32_t>(table.chunks.size()));
  for (size_t t = 0; t < numels.size(); ++t) {
    std::vector<int> seen(numels[t], 0);
    for (int32_t c = table.chunk_begin[t]; c < table.chunk_begin[t + 1]; ++c) {
      const ChunkRef chunk = table.chunks[c];
      ASSERT_EQ(chunk.tensor, static_cast<int32_t>(t));
      const int64_t begin = int64_t{chunk.chunk} * kChunk;
      ASSERT_LT(begin, numels[t]) << "empty chunk of tensor " << t;
      for (int64_t i = begin; i < std::min(begin + kChunk, numels[t]); ++i) ++seen[i];
    }
    for (int64_t i = 0; i < numels[t]; ++i) EXPECT_EQ(seen[i], 1) << t << ":" << i;
  }
}

TEST(MultiTensorTest, MuonShapesGroupByWideOrientation) {
  // One Llama block: wq, wk, wv, wo [d, d]; w_gate, w_up [f, d] (tall); w_down [d, f].
  const int64_t d = 768, f = 2048;
  std::vector<std::pair<int64_t, int64_t>> shapes;
  for (int layer = 0; layer < 2; ++layer) {
    for (int i = 0; i < 4; ++i) shapes.push_back({d, d});
    shapes.push_back({f, d});
    shapes.push_back({f, d});
    shapes.push_back({d, f});
  }
  const std::vector<MuonShapeGroup> groups = GroupByWideShape(shapes);
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_EQ(groups[0].n, d);
  EXPECT_EQ(groups[0].m, d);
  EXPECT_EQ(groups[0].members, (std::vector<int>{0, 1, 2, 3, 7, 8, 9, 10}));
  EXPECT_EQ(groups[0].transposed, std::vector<bool>(8, false));
  EXPECT_EQ(groups[1].n, d);
  EXPECT_EQ(groups[1].m, f);
  EXPECT_EQ(groups[1].members, (std::vector<int>{4, 5, 6, 11, 12, 13}));
  EXPECT_EQ(groups[1].transposed,
            (std::vector<bool>{true, true, false, true, true, false}));
}

TEST(MultiTensorTest, TilesCoverEveryMatrixElementOnce) {
  const std::vector<std::pair<int64_t, int64_t>> shapes = {{1, 1}, {33, 70}, {64, 32}, {5, 97}};
  const TileTable table = BuildTileTable(shapes);
  ASSERT_EQ(table.tile_begin.size(), shapes.size() + 1);
  EXPECT_EQ(table.tile_begin.back(), static_cast<int32_t>(table.tiles.size()));
  for (size_t k = 0; k < shapes.size(); ++k) {
    const auto [rows, cols] = shapes[k];
    std::vector<int> seen(rows * cols, 0);
    for (int32_t t = table.tile_begin[k]; t < table.tile_begin[k + 1]; ++t) {
      const TileRef tile = table.tiles[t];
      ASSERT_EQ(tile.matrix, static_cast<int32_t>(k));
      const int64_t r0 = int64_t{tile.tile_row} * kTileDim, c0 = int64_t{tile.tile_col} * kTileDim;
      ASSERT_TRUE(r0 < rows && c0 < cols) << "empty tile of matrix " << k;
      for (int64_t r = r0; r < std::min(r0 + kTileDim, rows); ++r) {
        for (int64_t c = c0; c < std::min(c0 + kTileDim, cols); ++c) ++seen[r * cols + c];
      }
    }
    for (size_t i = 0; i < seen.size(); ++i) EXPECT_EQ(seen[i], 1) << k << ":" << i;
  }
}

TEST(MultiTensorTest, OptimizerSetClipGradientsIsClipGradNormOnTheCpu) {
  ParameterStore set_store, ref_store;
  for (ParameterStore* store : {&set_store, &ref_store}) {
    store->Add("embed", ParamKind::kEmbedding, {11, 6});
    store->Add("layers.0.attn.wq", ParamKind::kMatrix, {6, 6});
    store->Add("norm", ParamKind::kNorm, {6});
    uint64_t stream = 0;
    for (Parameter* param : store->all()) {
      FillNormal(param->grad.f32(), param->grad.numel(), 0.0f, 3.0f, 9, stream++);
    }
  }
  Arena arena(Device::kCpu, size_t{1} << 20);
  OptimConfig config;
  config.set_matrix_optimizer(MUON);
  absl::StatusOr<std::unique_ptr<OptimizerSet>> set =
      OptimizerSet::Create(config, set_store.all(), &arena);
  ASSERT_TRUE(set.ok()) << set.status();
  const float want = ClipGradNorm(ref_store.all(), 1.0f);
  ASSERT_GT(want, 1.0f);  // clipping is active
  EXPECT_EQ((*set)->ClipGradients(1.0f), want);
  for (size_t i = 0; i < set_store.all().size(); ++i) {
    EXPECT_EQ(ParameterStore::Values(set_store.all()[i]->grad),
              ParameterStore::Values(ref_store.all()[i]->grad));
  }
}

}  // namespace
}  // namespace sinklab

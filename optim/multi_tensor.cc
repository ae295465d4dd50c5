#include "optim/multi_tensor.h"

#include <algorithm>
#include <limits>

#include "absl/strings/str_cat.h"
#include "core/status.h"

namespace sinklab {
namespace {

constexpr int64_t kMaxIndex = std::numeric_limits<int32_t>::max();

}  // namespace

ChunkTable BuildChunkTable(const std::vector<int64_t>& numels, int64_t chunk_elements) {
  SL_CHECK_MSG(chunk_elements > 0, absl::StrCat("chunk_elements=", chunk_elements));
  SL_CHECK(static_cast<int64_t>(numels.size()) <= kMaxIndex);
  ChunkTable table;
  table.chunk_begin.push_back(0);
  for (size_t t = 0; t < numels.size(); ++t) {
    SL_CHECK_MSG(numels[t] >= 1, absl::StrCat("tensor ", t, " has ", numels[t], " elements"));
    const int64_t chunks = (numels[t] + chunk_elements - 1) / chunk_elements;
    SL_CHECK_MSG(static_cast<int64_t>(table.chunks.size()) + chunks <= kMaxIndex,
                 "too many chunks for int32 indices");
    for (int64_t c = 0; c < chunks; ++c) {
      table.chunks.push_back({static_cast<int32_t>(t), static_cast<int32_t>(c)});
    }
    table.chunk_begin.push_back(static_cast<int32_t>(table.chunks.size()));
  }
  return table;
}

std::vector<MuonShapeGroup> GroupByWideShape(
    const std::vector<std::pair<int64_t, int64_t>>& shapes) {
  std::vector<MuonShapeGroup> groups;
  for (size_t i = 0; i < shapes.size(); ++i) {
    const auto [rows, cols] = shapes[i];
    SL_CHECK_MSG(rows >= 1 && cols >= 1, absl::StrCat("matrix ", i, " is ", rows, "x", cols));
    const int64_t n = std::min(rows, cols), m = std::max(rows, cols);
    auto it = std::find_if(groups.begin(), groups.end(), [&](const MuonShapeGroup& g) {
      return g.n == n && g.m == m;
    });
    if (it == groups.end()) {
      groups.push_back({n, m, {}, {}});
      it = groups.end() - 1;
    }
    it->members.push_back(static_cast<int>(i));
    it->transposed.push_back(rows > cols);
  }
  return groups;
}

TileTable BuildTileTable(const std::vector<std::pair<int64_t, int64_t>>& shapes) {
  TileTable table;
  table.tile_begin.push_back(0);
  for (size_t i = 0; i < shapes.size(); ++i) {
    const auto [rows, cols] = shapes[i];
    SL_CHECK_MSG(rows >= 1 && cols >= 1, absl::StrCat("matrix ", i, " is ", rows, "x", cols));
    const int64_t tile_rows = (rows + kTileDim - 1) / kTileDim;
    const int64_t tile_cols = (cols + kTileDim - 1) / kTileDim;
    SL_CHECK_MSG(static_cast<int64_t>(table.tiles.size()) + tile_rows * tile_cols <= kMaxIndex,
                 "too many tiles for int32 indices");
    for (int64_t r = 0; r < tile_rows; ++r) {
      for (int64_t c = 0; c < tile_cols; ++c) {
        table.tiles.push_back(
            {static_cast<int32_t>(i), static_cast<int32_t>(r), static_cast<int32_t>(c)});
      }
    }
    table.tile_begin.push_back(static_cast<int32_t>(table.tiles.size()));
  }
  return table;
}

}  // namespace sinklab

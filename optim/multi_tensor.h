// Work tables of the multi-tensor GPU optimizer kernels (optim/cuda/multi_tensor_gpu.h),
// built on the host once at an optimizer's construction and copied to the device. Plain
// structs shared by the host and the kernels; nothing here needs CUDA, so the tables are
// tested on the CPU (tests/optim/multi_tensor_test.cc).
//
//  - Chunks: tensors of any sizes cut into fixed-size chunks, one thread block per chunk.
//    Chunks are ordered tensor by tensor, so the chunks of tensor t are [chunk_begin[t],
//    chunk_begin[t + 1]); a per-chunk partial sum reduced over that range in order is a
//    deterministic per-tensor sum, and over every chunk a deterministic total.
//  - Muon shape groups: the matrices grouped by their wide orientation [n, m] = [min(rows,
//    cols), max(rows, cols)] (a tall [m, n] matrix joins the [n, m] group transposed), in
//    order of first appearance, so one strided-batched product serves a whole group.
//  - Tiles: 32 x 32 tiles of the matrices of a group in their stored [rows, cols] layout,
//    ordered matrix by matrix (tile_begin as chunk_begin), so a tile's block can read the
//    parameter coalesced and write the wide-oriented update coalesced through shared memory.
#ifndef SINKLAB_OPTIM_MULTI_TENSOR_H_
#define SINKLAB_OPTIM_MULTI_TENSOR_H_

#include <cstdint>
#include <utility>
#include <vector>

namespace sinklab {

// One chunk: elements [chunk * chunk_elements, min(numel, (chunk + 1) * chunk_elements)) of
// tensor `tensor`.
struct ChunkRef {
  int32_t tensor;
  int32_t chunk;
};

struct ChunkTable {
  std::vector<ChunkRef> chunks;
  std::vector<int32_t> chunk_begin;  // [tensors + 1]: prefix sums of the chunk counts
};

// The chunks of tensors with `numels` (each >= 1), chunk_elements > 0 per chunk.
ChunkTable BuildChunkTable(const std::vector<int64_t>& numels, int64_t chunk_elements);

// Matrices of one wide shape [n, m] (n <= m).
struct MuonShapeGroup {
  int64_t n = 0, m = 0;
  std::vector<int> members;       // indices into the shape list, in list order
  std::vector<bool> transposed;   // per member: stored [m, n] with m > n (tall)
};

// Groups [rows, cols] shapes (each >= 1) by wide orientation; groups in order of first
// appearance.
std::vector<MuonShapeGroup> GroupByWideShape(
    const std::vector<std::pair<int64_t, int64_t>>& shapes);

constexpr int kTileDim = 32;

// One kTileDim x kTileDim tile (clipped at the edges) of matrix `matrix` of a group, in
// stored coordinates: rows [tile_row * kTileDim, ...), cols [tile_col * kTileDim, ...).
struct TileRef {
  int32_t matrix;
  int32_t tile_row;
  int32_t tile_col;
};

struct TileTable {
  std::vector<TileRef> tiles;
  std::vector<int32_t> tile_begin;  // [matrices + 1]
};

// The tiles of matrices of stored shapes `shapes`, matrix by matrix, row-major tile order.
TileTable BuildTileTable(const std::vector<std::pair<int64_t, int64_t>>& shapes);

}  // namespace sinklab

#endif  // SINKLAB_OPTIM_MULTI_TENSOR_H_

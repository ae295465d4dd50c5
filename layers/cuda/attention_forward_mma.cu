// Tensor-core attention forward for bf16 and head dims 64 and 128 (the generic path of
// attention_forward.cu serves the rest), FlashAttention-2 style (Dao 2023).
//
// Tiling plan: one block of 4 warps per (64-query tile, b * h); warp w owns query rows
// [16 w, 16 w + 16) of the tile. The query tile is staged once (cp.async, swizzled,
// attention_mma.cuh) and kept in registers as A fragments. 64-key tiles of k and v stream
// through two shared-memory buffers: the copy of tile t + 1 is in flight while tile t is
// computed. Per key tile a warp computes S = Q K^T (16 x 64, fp32 in registers), scales and
// masks it, applies the normalizer's online update (attention_normalizer.cuh, per row in the
// quad that holds it), rounds the weights to bf16 as A fragments and accumulates O += P V
// (16 x d, fp32). Tiles entirely above a warp's diagonal are skipped. Query tiles are issued
// longest first across heads (causal balance; LongestFirstBlock).
//
// Clipped softmax has its own kernel, MmaClippedForwardKernel, on the same tiles: the key loop
// twice, its softmax lse first (keys only), then the clipped weights p with that lse,
// accumulating O += P V and, from the same V fragments, C += W V with w = UnclippedWeight(p)
// (the unclipped_values of layers/backend.h, which give the backward its row sums). Its
// second loop works on 16-key slices of a tile (scores, weights, both products) so that the
// two d-wide accumulators fit in registers at d = 128 (255, no spills; 164 at d = 64).
#include "layers/cuda/attention_mma.cuh"
#include "layers/cuda/attention_wgmma.cuh"

namespace sinklab {
namespace cuda {
namespace {

constexpr int kMmaRows = 64;  // queries per block and keys per tile
constexpr int kMmaThreads = 128;

template <int kD>
constexpr size_t MmaForwardSmem() {
  return sizeof(bf16) * kMmaRows * kD * 5 + kTileAlign;  // q, 2 x k, 2 x v
}

// Which keys of a key tile a warp's rows do not see: element e of n-tile nt of a C fragment
// is row warp_row0 + g + 8 (e / 2), key j0 + 8 nt + 2t + e % 2. Only tiles that cross the
// diagonal or the end of the keys need the mask (`needed`).
struct KeyTileMask {
  int warp_row0, j0, bias, keys;
  bool needed;
  __device__ __forceinline__ bool Masked(int nt, int e) const {
    const int lane = threadIdx.x & 31, g = lane / 4, t = lane & 3;
    const int row = warp_row0 + g + 8 * (e / 2), key = j0 + 8 * nt + 2 * t + (e & 1);
    return key > row + bias || key >= keys;
  }
};

// s *= scale, then -inf where masked; s holds the n-tiles [nt0, nt0 + kN) of a key tile.
template <int kN>
__device__ __forceinline__ void ScaleAndMask(float (&s)[kN][4], int nt0, float scale,
                                             const KeyTileMask& mask) {
#pragma unroll
  for (int nt = 0; nt < kN; ++nt) {
#pragma unroll
    for (int e = 0; e < 4; ++e) s[nt][e] *= scale;
  }
  if (mask.needed) {
#pragma unroll
    for (int nt = 0; nt < kN; ++nt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        if (mask.Masked(nt0 + nt, e)) s[nt][e] = -INFINITY;
      }
    }
  }
}

// s = scale * Q K^T for the n-tiles [nt0, nt0 + kN) of a key tile (keys [8 nt0, 8 (nt0 + kN))
// of it; nt0 even): this warp's 16 rows from its query fragments qa, -inf where masked.
template <int kD, int kN>
__device__ __forceinline__ void ScoreTiles(float (&s)[kN][4], const uint32_t (&qa)[kD / 16][4],
                                           SharedTile<kD> k_tile, int nt0, float scale,
                                           const KeyTileMask& mask) {
#pragma unroll
  for (int nt = 0; nt < kN; ++nt) {
#pragma unroll
    for (int e = 0; e < 4; ++e) s[nt][e] = 0.0f;
  }
#pragma unroll
  for (int ks = 0; ks < kD / 16; ++ks) {
#pragma unroll
    for (int np = 0; np < kN / 2; ++np) {
      uint32_t kb[4];
      k_tile.BFromRows(kb, 8 * nt0 + 16 * np, 16 * ks);
      Mma(s[2 * np], qa[ks], kb[0], kb[1]);
      Mma(s[2 * np + 1], qa[ks], kb[2], kb[3]);
    }
  }
  ScaleAndMask(s, nt0, scale, mask);
}

// The same for a whole 64-key tile with wgmma (d = 64, the warpgroup's 64 query rows; a
// template so that builds without wgmma, which never call it, do not warn).
template <int kD>
__device__ __forceinline__ void WgmmaScoreTile(float (&s)[kMmaRows / 8][4], uint32_t q_tile,
                                               uint32_t k_tile, float scale,
                                               const KeyTileMask& mask) {
  static_assert(kD == 64, "the wgmma path takes d = 64 only");
  {
    const WgmmaGroup wgmma;
    WgmmaRowsTimesRowsT(s, q_tile, k_tile);
  }
  ScaleAndMask(s, 0, scale, mask);
}

// The softmax's running max and sum (online, as MmaForwardKernel's) of rows g and g + 8
// (state[0], state[1]) over the scores s of a key tile (-inf where masked): clipped softmax's
// first loop.
template <int kN>
__device__ __forceinline__ void AddToSoftmaxSum(const NormalizerArgs& n, const float (&s)[kN][4],
                                                OnlineRow (&state)[2]) {
  float tile_max[2] = {-INFINITY, -INFINITY}, mass[2] = {0.0f, 0.0f};
#pragma unroll
  for (int nt = 0; nt < kN; ++nt) {
#pragma unroll
    for (int e = 0; e < 4; ++e) tile_max[e / 2] = fmaxf(tile_max[e / 2], s[nt][e]);
  }
#pragma unroll
  for (int r = 0; r < 2; ++r) RaiseMax(n, state[r], QuadMax(tile_max[r]));
#pragma unroll
  for (int nt = 0; nt < kN; ++nt) {
#pragma unroll
    for (int e = 0; e < 4; ++e) mass[e / 2] += __expf(s[nt][e] - state[e / 2].m);  // m finite
  }
#pragma unroll
  for (int r = 0; r < 2; ++r) state[r].l += QuadSum(mass[r]);
}

// acc [16, kD] += W V for the keys [16 kk, 16 kk + 16) of a value tile, W being the two
// C-fragment n-tiles w_lo, w_hi (rounded to bf16).
template <int kD>
__device__ __forceinline__ void AddWeightedValues(float (&acc)[kD / 8][4], const float (&w_lo)[4],
                                                  const float (&w_hi)[4], SharedTile<kD> v_tile,
                                                  int kk) {
  uint32_t wa[4];
  AFromC(wa, w_lo, w_hi);
#pragma unroll
  for (int dp = 0; dp < kD / 16; ++dp) {
    uint32_t vb[4];
    v_tile.BFromCols(vb, 16 * kk, 16 * dp);
    Mma(acc[2 * dp], wa, vb[0], vb[1]);
    Mma(acc[2 * dp + 1], wa, vb[2], vb[3]);
  }
}

// Every normalizer but clipped softmax. The pass loop (one pass here) and its `clipped` terms
// are those of the time when this kernel also ran clipped softmax's two passes: ptxas
// allocates the registers of the others by that structure (168 at d = 128, 128..155 at
// d = 64); without it they move (172..186, 124..151), so the loop stays and their code is
// unchanged.
template <int kD, AttentionNormalizer kKind>
__global__ void __launch_bounds__(kMmaThreads, kD == 64 ? 4 : 1)
    MmaForwardKernel(AttentionParams p, bf16* out, float* lse, const bf16* q, const bf16* k,
                     const bf16* v) {
  constexpr int kSteps = kD / 16;          // k-steps of Q K^T, and pairs of n-tiles of P V
  constexpr int kKeyTiles = kMmaRows / 8;  // n-tiles of S
  static_assert(kKind != AttentionNormalizer::kClippedSoftmax, "see MmaClippedForwardKernel");
  // Softmax, softmax1, the sink logit and softpick keep the raw scores q . k: the scale is
  // folded into each weight's exponent (one FFMA), and into the tile max. Masked scores are
  // -inf, softpick's 0: its term |e^(s-m) - e^-m| is then exactly 0 (the same ex2 of the same
  // exponent, -m log2 e), with no select per element, and its max starts at 0 anyway.
  constexpr bool kSoftpick = kKind == AttentionNormalizer::kSoftpick;
  constexpr bool kSoftmaxFamily = kKind == AttentionNormalizer::kSoftmax ||
                                  kKind == AttentionNormalizer::kSoftmax1 ||
                                  kKind == AttentionNormalizer::kSinkLogit;
  constexpr bool kRawScores = kSoftmaxFamily || kSoftpick;
  constexpr float kMasked = kSoftpick ? 0.0f : -INFINITY;
  NormalizerArgs n = p.norm;
  n.kind = kKind;  // compile-time: the normalizer switches fold away
  const AttentionDims& dims = p.dims;
  const int bias = dims.bias_keys();
  const auto [b, h, i0] = LongestFirstBlock<kMmaRows>(dims);
  const float scale_log2e = n.scale * kLog2e;
  const int warp = threadIdx.x / 32, lane = threadIdx.x & 31, g = lane / 4, t = lane & 3;
  const int warp_row0 = i0 + 16 * warp;  // this warp's first query
  const HeadView q_head = QueryHead(dims, b, h), kv_head = KeyHead(dims, b, h / dims.group());

  extern __shared__ __align__(16) unsigned char smem_bytes[];
  bf16* q_tile = reinterpret_cast<bf16*>(AlignedTiles<kD>(smem_bytes));
  bf16* k_tiles = q_tile + kMmaRows * kD;       // [2][64][kD]
  bf16* v_tiles = k_tiles + 2 * kMmaRows * kD;  // [2][64][kD]
  LoadTileAsync<kMmaRows, kD, kMmaThreads>(q_tile, q, q_head, i0, dims.seq);
  CopyAsyncCommit();

  const bool clipped = kKind == AttentionNormalizer::kClippedSoftmax;
  const int key_end = min(dims.keys, i0 + kMmaRows + bias);
  const int tiles = (key_end + kMmaRows - 1) / kMmaRows;
  const float sink = SinkLogitOf(p, h);
  OnlineRow state[2] = {StartRow(n, sink), StartRow(n, sink)};  // rows g and g + 8
  float row_lse[2] = {0.0f, 0.0f};
  float o[2 * kSteps][4] = {};  // O: n-tile dt holds dims [8 dt, 8 dt + 8)
  uint32_t qa[kSteps][4];
  for (int pass = clipped ? 0 : 1; pass < 2; ++pass) {
    const bool with_values = pass == 1;
    const auto issue = [&](int tile) {
      const int buffer = tile & 1;
      LoadTileAsync<kMmaRows, kD, kMmaThreads>(k_tiles + buffer * kMmaRows * kD, k, kv_head,
                                               tile * kMmaRows, dims.keys);
      if (with_values) {
        LoadTileAsync<kMmaRows, kD, kMmaThreads>(v_tiles + buffer * kMmaRows * kD, v, kv_head,
                                                 tile * kMmaRows, dims.keys);
      }
      CopyAsyncCommit();
    };
    issue(0);
    for (int tile = 0; tile < tiles; ++tile) {
      if (tile + 1 < tiles) {
        issue(tile + 1);
        CopyAsyncWait<1>();
      } else {
        CopyAsyncWait<0>();
      }
      if constexpr (kUseWgmma<kD>) FenceSharedForWgmma();
      __syncthreads();  // tile (and the query tile) visible to every warp
      if (!kUseWgmma<kD> && tile == 0 && pass == (clipped ? 0 : 1)) {
#pragma unroll
        for (int ks = 0; ks < kSteps; ++ks) TileAt<kD>(q_tile).A(qa[ks], 16 * warp, 16 * ks);
      }
      const int j0 = tile * kMmaRows;
      // Skip tiles past this warp's diagonal (every key masked for its 16 rows); with wgmma,
      // which takes the whole warpgroup, none is skipped (the block's last row sees each).
      if (kUseWgmma<kD> || j0 <= warp_row0 + 15 + bias) {
        const SharedTile<kD> k_tile = TileAt<kD>(k_tiles + (tile & 1) * kMmaRows * kD);
        const SharedTile<kD> v_tile = TileAt<kD>(v_tiles + (tile & 1) * kMmaRows * kD);
        float s[kKeyTiles][4] = {};
        if constexpr (kUseWgmma<kD>) {
          const WgmmaGroup wgmma;
          WgmmaRowsTimesRowsT(s, SharedAddress(q_tile), k_tile.at);
        } else {
#pragma unroll
          for (int ks = 0; ks < kSteps; ++ks) {
#pragma unroll
            for (int np = 0; np < kKeyTiles / 2; ++np) {
              uint32_t kb[4];
              k_tile.BFromRows(kb, 16 * np, 16 * ks);
              Mma(s[2 * np], qa[ks], kb[0], kb[1]);
              Mma(s[2 * np + 1], qa[ks], kb[2], kb[3]);
            }
          }
        }
        // Scale and mask: element e of n-tile nt is row g + 8 (e / 2), key j0 + 8 nt + 2t + e % 2.
        // Only tiles that cross the diagonal or the end of the keys need the mask.
        const bool needs_mask = j0 + kMmaRows - 1 > warp_row0 + bias || j0 + kMmaRows > dims.keys;
        if constexpr (!kRawScores) {
#pragma unroll
          for (int nt = 0; nt < kKeyTiles; ++nt) {
#pragma unroll
            for (int e = 0; e < 4; ++e) s[nt][e] *= n.scale;
          }
        }
        if (needs_mask) {
#pragma unroll
          for (int nt = 0; nt < kKeyTiles; ++nt) {
#pragma unroll
            for (int e = 0; e < 4; ++e) {
              const int row = warp_row0 + g + 8 * (e / 2), key = j0 + 8 * nt + 2 * t + (e & 1);
              if (key > row + bias || key >= dims.keys) s[nt][e] = kMasked;
            }
          }
        }
        float tile_max[2] = {-INFINITY, -INFINITY};
#pragma unroll
        for (int nt = 0; nt < kKeyTiles; ++nt) {
#pragma unroll
          for (int e = 0; e < 4; ++e) tile_max[e / 2] = fmaxf(tile_max[e / 2], s[nt][e]);
        }
        // Weights in place of the scores (masked keys: 0).
        {
          float alpha[2], e_neg_m[2], m2[2], mass[2] = {0.0f, 0.0f};
#pragma unroll
          for (int r = 0; r < 2; ++r) {
            const float row_max = QuadMax(tile_max[r]);
            alpha[r] = RaiseMax(n, state[r], kRawScores ? row_max * n.scale : row_max);
            m2[r] = state[r].m * kLog2e;
            e_neg_m[r] = kSoftpick ? Exp2(-m2[r]) : 0.0f;
          }
#pragma unroll
          for (int nt = 0; nt < kKeyTiles; ++nt) {
#pragma unroll
            for (int e = 0; e < 4; ++e) {
              // e^(s - m) = 2^(r scale log2 e - m log2 e)
              if constexpr (kSoftmaxFamily) {
                s[nt][e] = Exp2(fmaf(s[nt][e], scale_log2e, -m2[e / 2]));
                mass[e / 2] += s[nt][e];
              } else if constexpr (kSoftpick) {  // OnlineTermOf's, from r (r > 0 iff s > 0)
                const float a = Exp2(fmaf(s[nt][e], scale_log2e, -m2[e / 2])) - e_neg_m[e / 2];
                s[nt][e] = s[nt][e] > 0.0f ? fmaxf(a, 0.0f) : 0.0f;
                mass[e / 2] += fabsf(a);
              } else {  // sigmoid: a masked s = -inf gives weight and mass 0
                const OnlineTerm term = OnlineTermOf(n, state[e / 2].m, 0.0f, s[nt][e]);
                s[nt][e] = term.weight;
                mass[e / 2] += term.mass;
              }
            }
          }
#pragma unroll
          for (int r = 0; r < 2; ++r) state[r].l += QuadSum(mass[r]);
#pragma unroll
          for (int dt = 0; dt < 2 * kSteps; ++dt) {
            o[dt][0] *= alpha[0];
            o[dt][1] *= alpha[0];
            o[dt][2] *= alpha[1];
            o[dt][3] *= alpha[1];
          }
        }
        if constexpr (kUseWgmma<kD>) {
          if (with_values) {
            uint32_t pa[4][4];
            AFragments(pa, s);
            const WgmmaGroup wgmma;
            WgmmaFragmentsTimesRows(o, pa, v_tile.at);
          }
        } else if (with_values) {
#pragma unroll
          for (int kk = 0; kk < kKeyTiles / 2; ++kk) {
            uint32_t pa[4];
            AFromC(pa, s[2 * kk], s[2 * kk + 1]);
#pragma unroll
            for (int dp = 0; dp < kSteps; ++dp) {
              uint32_t vb[4];
              v_tile.BFromCols(vb, 16 * kk, 16 * dp);
              Mma(o[2 * dp], pa, vb[0], vb[1]);
              Mma(o[2 * dp + 1], pa, vb[2], vb[3]);
            }
          }
        }
      }
      __syncthreads();  // every warp is done with this buffer before it is refilled
    }
    if (pass == 0) {
      FinishRow(n, state[0], &row_lse[0]);  // clipped softmax: the softmax lse
      FinishRow(n, state[1], &row_lse[1]);
    }
  }
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int row = warp_row0 + g + 8 * r;
    const float factor = clipped ? 1.0f : FinishRow(n, state[r], &row_lse[r]);
    if (row >= dims.seq) continue;
    bf16* out_row = out + q_head.offset + row * q_head.stride + 2 * t;
#pragma unroll
    for (int dt = 0; dt < 2 * kSteps; ++dt) {
      *reinterpret_cast<__nv_bfloat162*>(out_row + 8 * dt) =
          __floats2bfloat162_rn(o[dt][2 * r] * factor, o[dt][2 * r + 1] * factor);
    }
    if (t == 0) lse[RowIndex(dims, b, h, row)] = row_lse[r];
  }
}

// Clipped softmax (Bondarenko et al. 2023): the tiling of MmaForwardKernel, with two loops
// over the keys. The first takes the softmax lse (keys only); the second, per 16-key slice
// of a tile, the weights p = clip((zeta - gamma) e^(s - lse) + gamma, 0, 1), O += P V and
// C += W V with w = UnclippedWeight(p) from the same V fragments. Slicing keeps the scores of
// a slice only (8 registers, not 32): with the two d-wide accumulators and the query
// fragments, d = 128 then fits in registers.
template <int kD>
__global__ void __launch_bounds__(kMmaThreads, kD == 64 ? 4 : 1)
    MmaClippedForwardKernel(AttentionParams p, bf16* out, float* lse, float* unclipped,
                            const bf16* q, const bf16* k, const bf16* v) {
  constexpr int kSteps = kD / 16;
  constexpr int kKeyTiles = kMmaRows / 8;
  NormalizerArgs n = p.norm;
  n.kind = AttentionNormalizer::kClippedSoftmax;
  const AttentionDims& dims = p.dims;
  const int bias = dims.bias_keys();
  const auto [b, h, i0] = LongestFirstBlock<kMmaRows>(dims);
  const int warp = threadIdx.x / 32, lane = threadIdx.x & 31, g = lane / 4, t = lane & 3;
  const int warp_row0 = i0 + 16 * warp;
  const HeadView q_head = QueryHead(dims, b, h), kv_head = KeyHead(dims, b, h / dims.group());

  extern __shared__ __align__(16) unsigned char smem_bytes[];
  bf16* q_tile = reinterpret_cast<bf16*>(AlignedTiles<kD>(smem_bytes));
  bf16* k_tiles = q_tile + kMmaRows * kD;       // [2][64][kD]
  bf16* v_tiles = k_tiles + 2 * kMmaRows * kD;  // [2][64][kD]
  LoadTileAsync<kMmaRows, kD, kMmaThreads>(q_tile, q, q_head, i0, dims.seq);
  CopyAsyncCommit();

  const int key_end = min(dims.keys, i0 + kMmaRows + bias);
  const int tiles = (key_end + kMmaRows - 1) / kMmaRows;
  uint32_t qa[kSteps][4];
  // One loop over the key tiles (values too when with_values), as MmaForwardKernel's:
  // body(k_tile, v_tile, mask) for each tile not entirely past this warp's diagonal. The
  // first loop also takes the query fragments.
  const auto stream_key_tiles = [&](bool with_values, auto&& body) {
    const auto issue = [&](int tile) {
      const int buffer = tile & 1;
      LoadTileAsync<kMmaRows, kD, kMmaThreads>(k_tiles + buffer * kMmaRows * kD, k, kv_head,
                                               tile * kMmaRows, dims.keys);
      if (with_values) {
        LoadTileAsync<kMmaRows, kD, kMmaThreads>(v_tiles + buffer * kMmaRows * kD, v, kv_head,
                                                 tile * kMmaRows, dims.keys);
      }
      CopyAsyncCommit();
    };
    issue(0);
    for (int tile = 0; tile < tiles; ++tile) {
      if (tile + 1 < tiles) {
        issue(tile + 1);
        CopyAsyncWait<1>();
      } else {
        CopyAsyncWait<0>();
      }
      if constexpr (kUseWgmma<kD>) FenceSharedForWgmma();
      __syncthreads();
      if (!kUseWgmma<kD> && !with_values && tile == 0) {
#pragma unroll
        for (int ks = 0; ks < kSteps; ++ks) TileAt<kD>(q_tile).A(qa[ks], 16 * warp, 16 * ks);
      }
      const int j0 = tile * kMmaRows;
      if (kUseWgmma<kD> || j0 <= warp_row0 + 15 + bias) {  // (wgmma: the whole warpgroup)
        const KeyTileMask mask{warp_row0, j0, bias, dims.keys,
                               j0 + kMmaRows - 1 > warp_row0 + bias || j0 + kMmaRows > dims.keys};
        body(TileAt<kD>(k_tiles + (tile & 1) * kMmaRows * kD),
             TileAt<kD>(v_tiles + (tile & 1) * kMmaRows * kD), mask);
      }
      __syncthreads();
    }
  };

  // Loop 1: the softmax's lse.
  OnlineRow state[2] = {StartRow(n, 0.0f), StartRow(n, 0.0f)};  // rows g and g + 8
  stream_key_tiles(false, [&](SharedTile<kD> k_tile, SharedTile<kD>, const KeyTileMask& mask) {
    float s[kKeyTiles][4];
    if constexpr (kUseWgmma<kD>) {
      WgmmaScoreTile<kD>(s, SharedAddress(q_tile), k_tile.at, n.scale, mask);
    } else {
      ScoreTiles<kD>(s, qa, k_tile, 0, n.scale, mask);
    }
    AddToSoftmaxSum(n, s, state);
  });
  float row_lse[2];
  FinishRow(n, state[0], &row_lse[0]);
  FinishRow(n, state[1], &row_lse[1]);

  // Loop 2: O and C, per 16-key slice kk of a tile (n-tiles 2 kk and 2 kk + 1); with wgmma,
  // per tile.
  float o[2 * kSteps][4] = {}, c[2 * kSteps][4] = {};
  stream_key_tiles(true, [&](SharedTile<kD> k_tile, SharedTile<kD> v_tile,
                             const KeyTileMask& mask) {
    if constexpr (kUseWgmma<kD>) {
      float s[kKeyTiles][4];
      WgmmaScoreTile<kD>(s, SharedAddress(q_tile), k_tile.at, n.scale, mask);
      uint32_t pa[4][4], wa[4][4];
#pragma unroll
      for (int nt = 0; nt < kKeyTiles; ++nt) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          s[nt][e] = s[nt][e] == -INFINITY ? 0.0f : WeightFromLse(n, s[nt][e], row_lse[e / 2]);
        }
      }
      AFragments(pa, s);
#pragma unroll
      for (int nt = 0; nt < kKeyTiles; ++nt) {
#pragma unroll
        for (int e = 0; e < 4; ++e) s[nt][e] = UnclippedWeight(n, s[nt][e]);
      }
      AFragments(wa, s);
      const WgmmaGroup wgmma;
      WgmmaFragmentsTimesRows(o, pa, v_tile.at);
      WgmmaFragmentsTimesRows(c, wa, v_tile.at);
    } else {
#pragma unroll
      for (int kk = 0; kk < kKeyTiles / 2; ++kk) {
        float s[2][4], w[2][4];
        ScoreTiles<kD>(s, qa, k_tile, 2 * kk, n.scale, mask);
#pragma unroll
        for (int nt = 0; nt < 2; ++nt) {
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            s[nt][e] = s[nt][e] == -INFINITY ? 0.0f : WeightFromLse(n, s[nt][e], row_lse[e / 2]);
            w[nt][e] = UnclippedWeight(n, s[nt][e]);
          }
        }
        AddWeightedValues<kD>(o, s[0], s[1], v_tile, kk);
        AddWeightedValues<kD>(c, w[0], w[1], v_tile, kk);
      }
    }
  });

#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int row = warp_row0 + g + 8 * r;
    if (row >= dims.seq) continue;
    const int64_t at = q_head.offset + row * q_head.stride + 2 * t;
#pragma unroll
    for (int dt = 0; dt < 2 * kSteps; ++dt) {
      *reinterpret_cast<__nv_bfloat162*>(out + at + 8 * dt) =
          __floats2bfloat162_rn(o[dt][2 * r], o[dt][2 * r + 1]);  // the weights are final
      unclipped[at + 8 * dt] = c[dt][2 * r];
      unclipped[at + 8 * dt + 1] = c[dt][2 * r + 1];
    }
    if (t == 0) lse[RowIndex(dims, b, h, row)] = row_lse[r];
  }
}

}  // namespace

bool MmaAttentionSupports(const AttentionDims& dims, std::initializer_list<const Tensor*> tensors) {
  if (dims.d != 64 && dims.d != 128) return false;
  for (const Tensor* t : tensors) {
    if (!t->empty() &&
        (t->dtype() != DType::kBF16 || reinterpret_cast<uintptr_t>(t->data()) % 16 != 0)) {
      return false;
    }
  }
  return true;
}

void LaunchMmaForward(cudaStream_t stream, const AttentionParams& p, const Tensor& out,
                      const Tensor& lse, const Tensor& unclipped_values, const Tensor& q,
                      const Tensor& k, const Tensor& v) {
  const dim3 grid = LongestFirstGrid(p.dims, kMmaRows);
  DispatchMmaKernel(p, [&](auto head_dim, auto kind) {
    constexpr int kD = decltype(head_dim)::value;
    constexpr size_t smem = MmaForwardSmem<kD>();
    if constexpr (decltype(kind)::value == AttentionNormalizer::kClippedSoftmax) {
      auto kernel = MmaClippedForwardKernel<kD>;
      AllowSharedMemory(kernel, smem);
      kernel<<<grid, kMmaThreads, smem, stream>>>(p, Ptr<bf16>(out), lse.f32(),
                                                  unclipped_values.f32(), Ptr<bf16>(q),
                                                  Ptr<bf16>(k), Ptr<bf16>(v));
    } else {
      auto kernel = MmaForwardKernel<kD, decltype(kind)::value>;
      AllowSharedMemory(kernel, smem);
      kernel<<<grid, kMmaThreads, smem, stream>>>(p, Ptr<bf16>(out), lse.f32(), Ptr<bf16>(q),
                                                  Ptr<bf16>(k), Ptr<bf16>(v));
    }
    SL_CUDA_LAUNCH_CHECK();
  });
}

}  // namespace cuda
}  // namespace sinklab

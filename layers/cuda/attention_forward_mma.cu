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
// (16 x d, fp32). Tiles entirely above a warp's diagonal are skipped. Clipped softmax runs the
// key loop twice (its softmax lse, then the clipped weights). Query tiles are issued longest
// first (causal balance).
#include "layers/cuda/attention_mma.cuh"

namespace sinklab {
namespace cuda {
namespace {

constexpr int kMmaRows = 64;  // queries per block and keys per tile
constexpr int kMmaThreads = 128;

template <int kD>
constexpr size_t MmaForwardSmem() {
  return sizeof(bf16) * kMmaRows * kD * 5;  // q, 2 x k, 2 x v
}

template <int kD, AttentionNormalizer kKind>
__global__ void __launch_bounds__(kMmaThreads)
    MmaForwardKernel(AttentionParams p, bf16* out, float* lse, const bf16* q, const bf16* k,
                     const bf16* v) {
  constexpr int kSteps = kD / 16;          // k-steps of Q K^T, and pairs of n-tiles of P V
  constexpr int kKeyTiles = kMmaRows / 8;  // n-tiles of S
  NormalizerArgs n = p.norm;
  n.kind = kKind;  // compile-time: the normalizer switches fold away
  const AttentionDims& dims = p.dims;
  const int bias = dims.bias_keys();
  const int b = blockIdx.y / dims.heads, h = blockIdx.y % dims.heads;
  const int i0 = (gridDim.x - 1 - blockIdx.x) * kMmaRows;
  const int warp = threadIdx.x / 32, lane = threadIdx.x & 31, g = lane / 4, t = lane & 3;
  const int warp_row0 = i0 + 16 * warp;  // this warp's first query
  const HeadView q_head = QueryHead(dims, b, h), kv_head = KeyHead(dims, b, h / dims.group());

  extern __shared__ __align__(16) unsigned char smem_bytes[];
  bf16* q_tile = reinterpret_cast<bf16*>(smem_bytes);
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
    const bool with_values = pass == 1, clipped_weights = clipped && pass == 1;
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
      __syncthreads();  // tile (and the query tile) visible to every warp
      if (tile == 0 && pass == (clipped ? 0 : 1)) {
#pragma unroll
        for (int ks = 0; ks < kSteps; ++ks) TileAt<kD>(q_tile).A(qa[ks], 16 * warp, 16 * ks);
      }
      const int j0 = tile * kMmaRows;
      // Skip tiles past this warp's diagonal (every key masked for its 16 rows).
      if (j0 <= warp_row0 + 15 + bias) {
        const SharedTile<kD> k_tile = TileAt<kD>(k_tiles + (tile & 1) * kMmaRows * kD);
        const SharedTile<kD> v_tile = TileAt<kD>(v_tiles + (tile & 1) * kMmaRows * kD);
        float s[kKeyTiles][4] = {};
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
        // Scale and mask: element e of n-tile nt is row g + 8 (e / 2), key j0 + 8 nt + 2t + e % 2.
        // Only tiles that cross the diagonal or the end of the keys need the mask.
        const bool needs_mask = j0 + kMmaRows - 1 > warp_row0 + bias || j0 + kMmaRows > dims.keys;
#pragma unroll
        for (int nt = 0; nt < kKeyTiles; ++nt) {
#pragma unroll
          for (int e = 0; e < 4; ++e) s[nt][e] *= n.scale;
        }
        if (needs_mask) {
#pragma unroll
          for (int nt = 0; nt < kKeyTiles; ++nt) {
#pragma unroll
            for (int e = 0; e < 4; ++e) {
              const int row = warp_row0 + g + 8 * (e / 2), key = j0 + 8 * nt + 2 * t + (e & 1);
              if (key > row + bias || key >= dims.keys) s[nt][e] = -INFINITY;
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
        if (clipped_weights) {
#pragma unroll
          for (int nt = 0; nt < kKeyTiles; ++nt) {
#pragma unroll
            for (int e = 0; e < 4; ++e) {
              s[nt][e] = s[nt][e] == -INFINITY ? 0.0f : WeightFromLse(n, s[nt][e], row_lse[e / 2]);
            }
          }
        } else {
          float alpha[2], e_neg_m[2], mass[2] = {0.0f, 0.0f};
#pragma unroll
          for (int r = 0; r < 2; ++r) {
            alpha[r] = RaiseMax(n, state[r], QuadMax(tile_max[r]));
            e_neg_m[r] = kKind == AttentionNormalizer::kSoftpick ? __expf(-state[r].m) : 0.0f;
          }
#pragma unroll
          for (int nt = 0; nt < kKeyTiles; ++nt) {
#pragma unroll
            for (int e = 0; e < 4; ++e) {
              // A masked s = -inf gives weight and mass 0 by itself (e^-inf, sigmoid(-inf)),
              // except for softpick's mass |e^(s-m) - e^-m|. m is finite: every row sees key 0.
              const int r = e / 2;
              const bool zero = kKind == AttentionNormalizer::kSoftpick && s[nt][e] == -INFINITY;
              const OnlineTerm term =
                  zero ? OnlineTerm{0.0f, 0.0f} : OnlineTermOf(n, state[r].m, e_neg_m[r], s[nt][e]);
              s[nt][e] = term.weight;
              mass[r] += term.mass;
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
        if (with_values) {
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
                      const Tensor& lse, const Tensor& q, const Tensor& k, const Tensor& v) {
  DispatchMmaKernel(p, [&](auto head_dim, auto kind) {
    constexpr int kD = decltype(head_dim)::value;
    auto kernel = MmaForwardKernel<kD, decltype(kind)::value>;
    constexpr size_t smem = MmaForwardSmem<kD>();
    AllowSharedMemory(kernel, smem);
    const dim3 grid((p.dims.seq + kMmaRows - 1) / kMmaRows, p.dims.batch * p.dims.heads);
    kernel<<<grid, kMmaThreads, smem, stream>>>(p, Ptr<bf16>(out), lse.f32(), Ptr<bf16>(q),
                                                Ptr<bf16>(k), Ptr<bf16>(v));
    SL_CUDA_LAUNCH_CHECK();
  });
}

}  // namespace cuda
}  // namespace sinklab

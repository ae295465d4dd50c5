// Tensor-core attention backward, dk and dv (attention_backward_mma.cuh): bf16, head dims 64
// and 128.
//
// Tiling plan: a persistent grid, one block of 8 warps per SM, in 2 groups of 4; a block takes
// work tiles (64 keys of one b and kv head; DkvTileOf) one after another. Warp w of a group
// owns keys [16 w, 16 w + 16), whose k and v tiles are staged once per tile (two buffers: the
// last round of a tile stages the next tile's, and its first round, so a tile starts with its
// copies done and no block starts cold). The block walks the (query head of its group,
// kQ-query tile) items that see the tile's keys, in order and in rounds:
// item 2 r goes to group 0 and item 2 r + 1 to group 1, so the heavy (early) key tiles finish
// in half the time. Each group stages its own items' q and dout tiles and lse and D rows, the
// next round's in flight (cp.async, double-buffered) while it computes the current one, and
// synchronizes on its own barrier: the groups wait for each other only where a tile starts
// (its k and v tiles come from every thread) and ends. D_i = dout_i . out_i
// (clipped softmax: dout_i . C_i) is the dq kernel's, which ran first and stored it
// (FlashAttention-2's preprocessing). Per item: S^T = K Q^T and dP^T = V dO^T (16 x kQ per
// warp), p and ds, then dV += P^T dO and dK += dS^T Q (P^T and dS^T as bf16 A fragments). kQ = 64
// for d = 64 and 32 for d = 128 (the dk and dv accumulators take 128 registers there). At a
// tile's end group 1's sums are added to group 0's through shared memory: a fixed order,
// deterministic.
//
// With wgmma (d = 64 on sm_90a) each group is a warpgroup and the two take turns on the tensor
// cores (FlashAttention-3's ping-pong scheduling, Shah et al. 2024): a group issues its
// products only after the other has issued its previous ones, so one group's elementwise
// work (an exponential per weight: at d = 64 the SM's exponential units need half as long as
// its tensor cores on the item's four products) runs while the other's products do. Without
// turns both groups issued their products at once and then both waited on the same
// exponential units.
#include <algorithm>

#include "layers/cuda/attention_backward_mma.cuh"
#include "layers/cuda/attention_wgmma.cuh"

namespace sinklab {
namespace cuda {
namespace {

constexpr int kDkvGroups = 2;  // warp groups of MmaDkvKernel, taking alternate query tiles
constexpr int kDkvThreads = kDkvGroups * kBwdThreads;
// Named barriers: kGroupBarrier + group is a group's own; kTurnBarrier + group completes when
// the other group passes the tensor cores to this one.
constexpr int kGroupBarrier = 1, kTurnBarrier = 3;

// [k, v tiles [buffer][k, v][kBwdRows][kD]][staged bf16 tiles [stage][group][q, dout][kQ][kD]]
// [lse, D, e^-lse (softpick) rows [stage][group][kQ] each].
template <int kD>
constexpr size_t DkvSmem() {
  constexpr int kQ = kDkvQueryTile<kD>;
  return sizeof(bf16) * (2 * 2 * kBwdRows * kD + 2 * kDkvGroups * 2 * kQ * kD) +
         sizeof(float) * 3 * 2 * kDkvGroups * kQ + kTileAlign;
}

// The two warpgroups' turns on the tensor cores. Every group takes and passes a turn around
// each product phase, also in rounds where it has nothing to compute, so the counts match:
// group 1 passes once before its first round and group 0 takes one more turn after its last.
// A group can pass twice only after the other has taken the first pass (it needs the other's
// pass in between), so no barrier sees more arrivals than it counts.
struct TensorTurns {
  int group;
  __device__ __forceinline__ void Take() const { BarrierSync(kTurnBarrier + group, kDkvThreads); }
  __device__ __forceinline__ void Pass() const {
    BarrierArrive(kTurnBarrier + 1 - group, kDkvThreads);
  }
};

// Work tile w of MmaDkvKernel: the 64 keys [j0, j0 + 64) of one (b, kv head) and the items
// (query head of the group, kQ-query tile) that see some of them, taken kDkvGroups a round.
// Tiles are numbered heavy first: every (b, kv head)'s first key tile (seen by every query),
// then every second one, and so on.
struct DkvTile {
  int b, kv, j0, first_query, tiles_per_head, items, rounds;
};
template <int kQ>
__device__ __forceinline__ DkvTile DkvTileOf(const AttentionDims& dims, int w) {
  const int heads = dims.batch * dims.kv_heads;
  DkvTile tile;
  tile.j0 = w / heads * kBwdRows;
  tile.b = w % heads / dims.kv_heads;
  tile.kv = w % heads % dims.kv_heads;
  tile.first_query = max(0, tile.j0 - dims.bias_keys()) / kQ * kQ;
  tile.tiles_per_head = (dims.seq - tile.first_query + kQ - 1) / kQ;
  tile.items = tile.tiles_per_head * dims.group();
  tile.rounds = (tile.items + kDkvGroups - 1) / kDkvGroups;
  return tile;
}
__host__ __device__ inline int DkvTiles(const AttentionDims& dims) {
  return (dims.keys + kBwdRows - 1) / kBwdRows * dims.batch * dims.kv_heads;
}
// The work tile of this block's pass `pass` (a persistent grid: block i takes tiles i and
// 2 G - 1 - i of every 2 G, G = gridDim.x, so that heavy and light tiles even out).
__device__ __forceinline__ int DkvWorkOf(int pass) {
  return pass * gridDim.x + (pass % 2 == 0 ? blockIdx.x : gridDim.x - 1 - blockIdx.x);
}

// dk, dv of group 0 += group 1's (the warp at the same position), through two free shared
// areas of 256 kD bytes each: a fixed order, so the result does not depend on timing. Every
// thread of the block calls it; the areas are free again when it returns.
template <int kD>
__device__ __forceinline__ void AddGroupSums(float (&dk_acc)[kD / 8][4], float (&dv_acc)[kD / 8][4],
                                             void* dk_area, void* dv_area) {
  const int warp = threadIdx.x / 32, at = (warp % 4) * kD * 16 + (threadIdx.x & 31);
  float* dk_sums = static_cast<float*>(dk_area) + at;  // [4 warps][kD / 8][4][32]
  float* dv_sums = static_cast<float*>(dv_area) + at;
  __syncthreads();  // both groups are done with the areas
  if (warp >= 4) {
#pragma unroll
    for (int dt = 0; dt < kD / 8; ++dt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        dk_sums[(dt * 4 + e) * 32] = dk_acc[dt][e];
        dv_sums[(dt * 4 + e) * 32] = dv_acc[dt][e];
      }
    }
  }
  __syncthreads();
  if (warp < 4) {
#pragma unroll
    for (int dt = 0; dt < kD / 8; ++dt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        dk_acc[dt][e] += dk_sums[(dt * 4 + e) * 32];
        dv_acc[dt][e] += dv_sums[(dt * 4 + e) * 32];
      }
    }
  }
  __syncthreads();
}

template <int kD, AttentionNormalizer kKind>
__global__ void __launch_bounds__(kDkvThreads, 1)
    MmaDkvKernel(AttentionParams p, bf16* dk, bf16* dv, const bf16* dout, const bf16* q,
                 const bf16* k, const bf16* v, const float* row_dots, const float* lse,
                 bool assign) {
  constexpr int kQ = kDkvQueryTile<kD>, kQueryTiles = kQ / 8, kTile = kQ * kD;
  constexpr bool kRowDot = kKind != AttentionNormalizer::kSigmoid;  // sigmoid's ds needs no D
  constexpr bool kSoftpick = kKind == AttentionNormalizer::kSoftpick;  // its p reads e^-lse
  constexpr bool kWgmma = kUseWgmma<kD>;
  constexpr int kStaged = 2;  // bf16 tiles staged per item: q, dout
  static_assert(4 * 16 * kD * sizeof(float) <= 2 * kBwdRows * kD * sizeof(bf16) &&
                    4 * 16 * kD * sizeof(float) <= kDkvGroups * kStaged * kTile * sizeof(bf16),
                "AddGroupSums' areas: a k, v buffer and a stage");
  NormalizerArgs n = p.norm;
  n.kind = kKind;
  const AttentionDims& dims = p.dims;
  const int bias = dims.bias_keys(), tiles = DkvTiles(dims);
  const int warp = threadIdx.x / 32, lane = threadIdx.x & 31, g = lane / 4, t = lane & 3;
  const int group = warp / 4, group_thread = threadIdx.x % kBwdThreads;
  const TensorTurns turns{group};

  extern __shared__ __align__(16) unsigned char smem_bytes[];
  bf16* kv_tiles = reinterpret_cast<bf16*>(AlignedTiles<kD>(smem_bytes));  // [2][k, v]
  bf16* staged = kv_tiles + 2 * 2 * kBwdRows * kD;  // [stage][group][q, dout][kQ][kD]
  float* lse_rows = reinterpret_cast<float*>(staged + 2 * kDkvGroups * kStaged * kTile);
  float* dot_rows = lse_rows + 2 * kDkvGroups * kQ;  // [2][2][kQ], as lse_rows
  float* neg_rows = dot_rows + 2 * kDkvGroups * kQ;  // softpick's e^-lse, as lse_rows
  const float* neg_exps = row_dots + dims.rows();
  const auto tile_of = [&](int stage, int tensor) {
    return staged + ((stage * kDkvGroups + group) * kStaged + tensor) * kTile;
  };
  const auto rows_of = [&](float* rows, int stage) {
    return rows + (stage * kDkvGroups + group) * kQ;
  };
  const auto item_head = [&](const DkvTile& w, int item) {
    return w.kv * dims.group() + item / w.tiles_per_head;
  };
  const auto item_row0 = [&](const DkvTile& w, int item) {
    return w.first_query + (item % w.tiles_per_head) * kQ;
  };
  // Stages the k and v tiles of work tile w in buffer `buffer` (cp.async, every thread of the
  // block; the caller commits).
  const auto issue_keys = [&](const DkvTile& w, int buffer) {
    bf16* k_tile = kv_tiles + buffer * 2 * kBwdRows * kD;
    const HeadView kv_head = KeyHead(dims, w.b, w.kv);
    LoadTileAsync<kBwdRows, kD, kDkvThreads>(k_tile, k, kv_head, w.j0, dims.keys);
    LoadTileAsync<kBwdRows, kD, kDkvThreads>(k_tile + kBwdRows * kD, v, kv_head, w.j0, dims.keys);
  };
  // Stages this group's q and dout tiles and lse and D rows of round `round` of work tile w
  // in `stage` (cp.async, one commit group, empty when the group has no item in it).
  const auto issue = [&](const DkvTile& w, int round, int stage) {
    const int item = kDkvGroups * round + group;
    if (item < w.items) {
      const int h = item_head(w, item), row0 = item_row0(w, item);
      const HeadView q_head = QueryHead(dims, w.b, h);
      LoadTileAsync<kQ, kD, kBwdThreads>(tile_of(stage, 0), q, q_head, row0, dims.seq,
                                         group_thread);
      LoadTileAsync<kQ, kD, kBwdThreads>(tile_of(stage, 1), dout, q_head, row0, dims.seq,
                                         group_thread);
      if (group_thread < kQ) {
        const int row = row0 + group_thread;
        const bool valid = row < dims.seq;
        const int64_t at = RowIndex(dims, w.b, h, valid ? row : 0);
        CopyAsync4(rows_of(lse_rows, stage) + group_thread, lse + at, valid);
        if (kRowDot) CopyAsync4(rows_of(dot_rows, stage) + group_thread, row_dots + at, valid);
        if (kSoftpick) CopyAsync4(rows_of(neg_rows, stage) + group_thread, neg_exps + at, valid);
      }
    }
    CopyAsyncCommit();
  };

  // The block's work tiles one after another; `step` counts rounds over all of them (its
  // parity is the stage), and the last round of a tile stages the next tile's keys and first
  // round, so a tile starts with its copies done.
  DkvTile tile = DkvTileOf<kQ>(dims, DkvWorkOf(0));
  issue_keys(tile, 0);
  issue(tile, 0, 0);
  if (kWgmma && group == 1) turns.Pass();
  for (int pass = 0, step = 0;; ++pass) {
    const int next_work = DkvWorkOf(pass + 1);
    const bool has_next = next_work < tiles;
    const int buffer = pass & 1, j0 = tile.j0, warp_key0 = j0 + 16 * (warp % 4);
    const bf16* k_tile = kv_tiles + buffer * 2 * kBwdRows * kD;
    const bf16* v_tile = k_tile + kBwdRows * kD;
    float dk_acc[kD / 8][4] = {}, dv_acc[kD / 8][4] = {};
    for (int round = 0; round < tile.rounds; ++round, ++step) {
      if (round + 1 < tile.rounds) {
        issue(tile, round + 1, (step + 1) & 1);
        CopyAsyncWait<1>();
      } else if (has_next) {
        const DkvTile next = DkvTileOf<kQ>(dims, next_work);
        issue_keys(next, buffer ^ 1);  // (committed with next's first round)
        issue(next, 0, (step + 1) & 1);
        CopyAsyncWait<1>();
      } else {
        CopyAsyncWait<0>();
      }
      if constexpr (kWgmma) FenceSharedForWgmma();
      // The k and v tiles come from every thread of the block, the rest from the group's own.
      if (round == 0) {
        __syncthreads();
      } else {
        BarrierSync(kGroupBarrier + group, kBwdThreads);
      }
      const int stage = step & 1;
      const int item = kDkvGroups * round + group;
      const int row0 = item < tile.items ? item_row0(tile, item) : 0;
      // Compute when this group has an item and some of this warp's keys (with wgmma, which
      // takes the whole warpgroup: of the block's keys) exist and are seen by its queries. A
      // warp of a warpgroup that skipped a wgmma the others issue would hang them
      // (.sync.aligned), so under wgmma the condition is the same for the 4 warps.
      const int first_key = kWgmma ? j0 : warp_key0;
      const bool compute =
          item < tile.items && first_key <= row0 + kQ - 1 + bias && first_key < dims.keys;
      const bf16* q_tile = tile_of(stage, 0);
      const bf16* dout_tile = tile_of(stage, 1);
      const float* tile_lse = rows_of(lse_rows, stage);
      const float* tile_dot = rows_of(dot_rows, stage);
      const float* tile_neg = rows_of(neg_rows, stage);
      float w[kQueryTiles][4] = {}, ds[kQueryTiles][4] = {};  // s^T, dp^T; p^T, ds^T in place
      if constexpr (kWgmma) {
        turns.Take();
        if (compute) {
          WgmmaFence();
          WgmmaRowsTimesRowsT(w, SharedAddress(k_tile), SharedAddress(q_tile));
          WgmmaRowsTimesRowsT(ds, SharedAddress(v_tile), SharedAddress(dout_tile));
          WgmmaCommit();
          turns.Pass();
          WgmmaWait();
          KeepRegisters(w);
          KeepRegisters(ds);
        } else {
          turns.Pass();
        }
      } else if (compute) {
        RowBlockTimesRowsT<kD>(w, k_tile, q_tile, warp % 4);
        RowBlockTimesRowsT<kD>(ds, v_tile, dout_tile, warp % 4);
      }
      if (compute) {
#pragma unroll
        for (int nt = 0; nt < kQueryTiles; ++nt) {
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const int local = 8 * nt + 2 * t + (e & 1);
            const float row_lse = tile_lse[local];
            const Score score =
                BackwardScoreOf<kKind>(w[nt][e], n.scale, row_lse, row_lse * kLog2e);
            const WeightGrad wg = WeightGradOf(n, score, ds[nt][e], tile_dot[local],
                                               kSoftpick ? tile_neg[local] : 0.0f);
            w[nt][e] = wg.p;
            ds[nt][e] = wg.ds;
          }
        }
        // Only tiles that cross the diagonal or an end need the mask.
        if (warp_key0 + 15 > row0 + bias || row0 + kQ > dims.seq || warp_key0 + 16 > dims.keys) {
#pragma unroll
          for (int nt = 0; nt < kQueryTiles; ++nt) {
#pragma unroll
            for (int e = 0; e < 4; ++e) {
              const int key = warp_key0 + g + 8 * (e / 2), query = row0 + 8 * nt + 2 * t + (e & 1);
              if (query >= dims.seq || key >= dims.keys || key > query + bias) {
                w[nt][e] = 0.0f;
                ds[nt][e] = 0.0f;
              }
            }
          }
        }
      }
      if constexpr (kWgmma) {
        uint32_t pa[4][4], dsa[4][4];
        if (compute) {
          AFragments(pa, w);
          AFragments(dsa, ds);
        }
        turns.Take();
        if (compute) {
          WgmmaFence();
          WgmmaFragmentsTimesRows(dv_acc, pa, SharedAddress(dout_tile));
          WgmmaFragmentsTimesRows(dk_acc, dsa, SharedAddress(q_tile));
          WgmmaCommit();
          turns.Pass();
          WgmmaWait();
          KeepRegisters(pa);
          KeepRegisters(dsa);
          KeepRegisters(dv_acc);
          KeepRegisters(dk_acc);
        } else {
          turns.Pass();
        }
      } else if (compute) {
        FragmentsTimesRows<kD>(dv_acc, w, dout_tile);
        FragmentsTimesRows<kD>(dk_acc, ds, q_tile);
      }
      BarrierSync(kGroupBarrier + group, kBwdThreads);  // the stage is free for step + 2
    }
    if (kWgmma && !has_next && group == 0) turns.Take();  // group 1's last pass
    AddGroupSums<kD>(dk_acc, dv_acc, kv_tiles + buffer * 2 * kBwdRows * kD,
                     staged + ((step - 1) & 1) * kDkvGroups * kStaged * kTile);
    if (group == 0) {
      const HeadView kv_head = KeyHead(dims, tile.b, tile.kv);
      if (dk != nullptr) {
        AccumulateFragments<kD>(dk, kv_head, warp_key0, dims.keys, dk_acc, n.scale, assign);
      }
      if (dv != nullptr) {
        AccumulateFragments<kD>(dv, kv_head, warp_key0, dims.keys, dv_acc, 1.0f, assign);
      }
    }
    if (!has_next) break;
    tile = DkvTileOf<kQ>(dims, next_work);
  }
}
// How many blocks of `kernel` (threads each, `smem` dynamic shared bytes) the current device
// runs at once: the grid of a persistent kernel.
template <typename Kernel>
int ResidentBlocks(Kernel kernel, int threads, size_t smem) {
  int device = 0, sms = 0, per_sm = 0;
  SL_CUDA_CHECK(cudaGetDevice(&device));
  SL_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  SL_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, threads, smem));
  SL_CHECK_MSG(per_sm > 0, "the dk/dv attention kernel does not fit on an SM");
  return sms * per_sm;
}
}  // namespace

void LaunchMmaDkv(cudaStream_t stream, const AttentionParams& p, const Tensor& dk, const Tensor& dv,
                  const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v,
                  const Tensor& row_dots, const Tensor& lse, bool assign) {
  SL_CHECK(row_dots.dtype() == DType::kF32 && row_dots.numel() == RowDotArrays(p) * lse.numel());
  DispatchMmaKernel(p, [&](auto head_dim, auto kind) {
    constexpr int kD = decltype(head_dim)::value;
    constexpr AttentionNormalizer kKind = decltype(kind)::value;
    auto kernel = MmaDkvKernel<kD, kKind>;
    const size_t smem = DkvSmem<kD>();
    AllowSharedMemory(kernel, smem);
    static const int resident = ResidentBlocks(kernel, kDkvThreads, smem);
    const int grid = std::min(DkvTiles(p.dims), resident);
    kernel<<<grid, kDkvThreads, smem, stream>>>(p, dk.empty() ? nullptr : Ptr<bf16>(dk),
                                                dv.empty() ? nullptr : Ptr<bf16>(dv),
                                                Ptr<bf16>(dout), Ptr<bf16>(q), Ptr<bf16>(k),
                                                Ptr<bf16>(v), row_dots.f32(), lse.f32(), assign);
    SL_CUDA_LAUNCH_CHECK();
  });
}

}  // namespace cuda
}  // namespace sinklab

// Tensor-core attention backward, dk and dv (attention_backward_mma.cuh): bf16, head dims 64
// and 128.
//
// Tiling plan: one block of 8 warps per (64-key tile, b * kv head), in 2 groups of 4; warp w
// of a group owns keys [16 w, 16 w + 16), whose k and v tiles are staged once. The block walks
// the (query head of its group, kQ-query tile) items that see its keys, in order and in rounds:
// item 2 r goes to group 0 and item 2 r + 1 to group 1, so the heavy (early) key tiles finish
// in half the time. Each group stages its own items' q and dout tiles and lse and D rows, the
// next round's in flight (cp.async, double-buffered) while it computes the current one, and
// synchronizes on its own barrier: the groups do not wait for each other. D_i = dout_i . out_i
// (clipped softmax: dout_i . C_i) is the dq kernel's, which ran first and stored it
// (FlashAttention-2's preprocessing). Per item: S^T = K Q^T and dP^T = V dO^T (16 x kQ per
// warp), p and ds, then dV += P^T dO and dK += dS^T Q (P^T and dS^T as bf16 A fragments). kQ = 64
// for d = 64 and 32 for d = 128 (the dk and dv accumulators take 128 registers there). At the end
// group 1's sums are added to group 0's through shared memory: a fixed order, deterministic.
//
// With wgmma (d = 64 on sm_90a) each group is a warpgroup and the two take turns on the tensor
// cores (FlashAttention-3's ping-pong scheduling, Shah et al. 2024): a group issues its
// products only after the other has issued its previous ones, so one group's elementwise
// work (an exponential per weight: at d = 64 the SM's exponential units need half as long as
// its tensor cores on the item's four products) runs while the other's products do. Without
// turns both groups issued their products at once and then both waited on the same
// exponential units.
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

// [k, v tiles][staged bf16 tiles [stage][group][q, dout][kQ][kD]][lse, D, e^-lse (softpick)
// rows [stage][group][kQ] each].
template <int kD>
constexpr size_t DkvSmem() {
  constexpr int kQ = kDkvQueryTile<kD>;
  return sizeof(bf16) * (2 * kBwdRows * kD + 2 * kDkvGroups * 2 * kQ * kD) +
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
  NormalizerArgs n = p.norm;
  n.kind = kKind;
  const AttentionDims& dims = p.dims;
  const int bias = dims.bias_keys();
  const int b = blockIdx.y / dims.kv_heads, kv = blockIdx.y % dims.kv_heads;
  const int j0 = blockIdx.x * kBwdRows;
  const int warp = threadIdx.x / 32, lane = threadIdx.x & 31, g = lane / 4, t = lane & 3;
  const int group = warp / 4, group_thread = threadIdx.x % kBwdThreads;
  const int warp_key0 = j0 + 16 * (warp % 4);
  const HeadView kv_head = KeyHead(dims, b, kv);
  const TensorTurns turns{group};

  extern __shared__ __align__(16) unsigned char smem_bytes[];
  bf16* k_tile = reinterpret_cast<bf16*>(AlignedTiles<kD>(smem_bytes));
  bf16* v_tile = k_tile + kBwdRows * kD;
  bf16* staged = v_tile + kBwdRows * kD;  // [stage][group][q, dout][kQ][kD]
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

  // Work items: (query head of the group, query tile that sees some key of this block); item
  // kDkvGroups r + group is this group's in round r.
  const int first_query = max(0, j0 - bias) / kQ * kQ;
  const int tiles_per_head = (dims.seq - first_query + kQ - 1) / kQ;
  const int items = tiles_per_head * dims.group();
  const int rounds = (items + kDkvGroups - 1) / kDkvGroups;
  const auto item_head = [&](int item) { return kv * dims.group() + item / tiles_per_head; };
  const auto item_row0 = [&](int item) { return first_query + (item % tiles_per_head) * kQ; };
  // Stages this group's q and dout tiles and lse and D rows of a round (cp.async, one commit
  // group, empty when the group has no item in it).
  const auto issue = [&](int round) {
    const int item = kDkvGroups * round + group, stage = round & 1;
    if (item < items) {
      const int h = item_head(item), row0 = item_row0(item);
      const HeadView q_head = QueryHead(dims, b, h);
      LoadTileAsync<kQ, kD, kBwdThreads>(tile_of(stage, 0), q, q_head, row0, dims.seq,
                                         group_thread);
      LoadTileAsync<kQ, kD, kBwdThreads>(tile_of(stage, 1), dout, q_head, row0, dims.seq,
                                         group_thread);
      if (group_thread < kQ) {
        const int row = row0 + group_thread;
        const bool valid = row < dims.seq;
        const int64_t at = RowIndex(dims, b, h, valid ? row : 0);
        CopyAsync4(rows_of(lse_rows, stage) + group_thread, lse + at, valid);
        if (kRowDot) CopyAsync4(rows_of(dot_rows, stage) + group_thread, row_dots + at, valid);
        if (kSoftpick) CopyAsync4(rows_of(neg_rows, stage) + group_thread, neg_exps + at, valid);
      }
    }
    CopyAsyncCommit();
  };

  LoadTileAsync<kBwdRows, kD, kDkvThreads>(k_tile, k, kv_head, j0, dims.keys);
  LoadTileAsync<kBwdRows, kD, kDkvThreads>(v_tile, v, kv_head, j0, dims.keys);
  CopyAsyncCommit();
  issue(0);
  CopyAsyncWait<1>();  // this thread's share of the k and v tiles
  if constexpr (kWgmma) FenceSharedForWgmma();
  __syncthreads();
  if (kWgmma && group == 1) turns.Pass();

  float dk_acc[kD / 8][4] = {}, dv_acc[kD / 8][4] = {};
  for (int round = 0; round < rounds; ++round) {
    if (round + 1 < rounds) {
      issue(round + 1);
      CopyAsyncWait<1>();
    } else {
      CopyAsyncWait<0>();
    }
    if constexpr (kWgmma) FenceSharedForWgmma();
    BarrierSync(kGroupBarrier + group, kBwdThreads);
    const int stage = round & 1;
    const int item = kDkvGroups * round + group, row0 = item < items ? item_row0(item) : 0;
    // Compute when this group has an item and some of this warp's keys (with wgmma, which
    // takes the whole warpgroup: of the block's keys) exist and are seen by its queries. A
    // warp of a warpgroup that skipped a wgmma the others issue would hang them
    // (.sync.aligned), so under wgmma the condition is the same for the 4 warps.
    const int first_key = kWgmma ? j0 : warp_key0;
    const bool compute = item < items && first_key <= row0 + kQ - 1 + bias && first_key < dims.keys;
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
          const Score score = BackwardScoreOf<kKind>(w[nt][e], n.scale, row_lse, row_lse * kLog2e);
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
    BarrierSync(kGroupBarrier + group, kBwdThreads);  // the stage is free for round + 2
  }
  if (kWgmma && group == 0) turns.Take();  // group 1's last pass
  __syncthreads();                         // both groups are done with the staged tiles
  // dk, dv = group 0's sums + group 1's, through shared memory (the staged tiles are free):
  // a fixed order, so the result does not depend on timing.
  static_assert(4 * 2 * kD * 16 * sizeof(float) <= 2 * kDkvGroups * kStaged * kTile * sizeof(bf16),
                "the group sums fit in the staged tiles");
  float* partials = reinterpret_cast<float*>(staged);  // [4 warps][dk, dv][kD / 8][4][32]
  float* mine = partials + (warp % 4) * 2 * kD * 16 + lane;
  if (group == 1) {
#pragma unroll
    for (int dt = 0; dt < kD / 8; ++dt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        mine[(dt * 4 + e) * 32] = dk_acc[dt][e];
        mine[kD * 16 + (dt * 4 + e) * 32] = dv_acc[dt][e];
      }
    }
  }
  __syncthreads();
  if (group == 1) return;
#pragma unroll
  for (int dt = 0; dt < kD / 8; ++dt) {
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      dk_acc[dt][e] += mine[(dt * 4 + e) * 32];
      dv_acc[dt][e] += mine[kD * 16 + (dt * 4 + e) * 32];
    }
  }
  if (dk != nullptr) {
    AccumulateFragments<kD>(dk, kv_head, warp_key0, dims.keys, dk_acc, n.scale, assign);
  }
  if (dv != nullptr) {
    AccumulateFragments<kD>(dv, kv_head, warp_key0, dims.keys, dv_acc, 1.0f, assign);
  }
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
    const dim3 grid((p.dims.keys + kBwdRows - 1) / kBwdRows, p.dims.batch * p.dims.kv_heads);
    kernel<<<grid, kDkvThreads, smem, stream>>>(p, dk.empty() ? nullptr : Ptr<bf16>(dk),
                                                dv.empty() ? nullptr : Ptr<bf16>(dv),
                                                Ptr<bf16>(dout), Ptr<bf16>(q), Ptr<bf16>(k),
                                                Ptr<bf16>(v), row_dots.f32(), lse.f32(), assign);
    SL_CUDA_LAUNCH_CHECK();
  });
}

}  // namespace cuda
}  // namespace sinklab

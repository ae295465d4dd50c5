// Tensor-core attention backward, dk and dv (attention_backward_mma.cuh): bf16, head dims 64
// and 128.
//
// Tiling plan: one block of 8 warps per (64-key tile, b * kv head), in 2 groups of 4; warp w
// of a group owns keys [16 w, 16 w + 16), whose k and v tiles are staged once. The block walks
// the (query head of its group, kQ-query tile) items that see its keys, in order and in pairs:
// item 2 i goes to group 0 and item 2 i + 1 to group 1, so the heavy (early) key tiles finish
// in half the time. The q and dout tiles and the lse and D rows of the next pair are in flight
// (cp.async, double-buffered) while the current pair is computed; D_i = dout_i . out_i
// (clipped softmax: dout_i . C_i) is the dq kernel's, which ran first and stored it
// (FlashAttention-2's preprocessing; before, every key tile recomputed it from a staged out
// tile). Per item: S^T = K Q^T and dP^T = V dO^T (16 x kQ per
// warp), p and ds, then dV += P^T dO and dK += dS^T Q (P^T and dS^T as bf16 A fragments). kQ = 64
// for d = 64 and 32 for d = 128 (the dk and dv accumulators take 128 registers there). At the end
// group 1's sums are added to group 0's through shared memory: a fixed order, deterministic.
#include "layers/cuda/attention_backward_mma.cuh"
#include "layers/cuda/attention_wgmma.cuh"

namespace sinklab {
namespace cuda {
namespace {

constexpr int kDkvGroups = 2;  // warp groups of MmaDkvKernel, taking alternate query tiles
constexpr int kDkvThreads = kDkvGroups * kBwdThreads;

// [k, v tiles][staged bf16 tiles [stage][group][q, dout][kQ][kD]][lse, D, e^-lse (softpick)
// rows [stage][group][kQ] each].
template <int kD>
constexpr size_t DkvSmem() {
  constexpr int kQ = kDkvQueryTile<kD>;
  return sizeof(bf16) * (2 * kBwdRows * kD + 2 * kDkvGroups * 2 * kQ * kD) +
         sizeof(float) * 3 * 2 * kDkvGroups * kQ + kTileAlign;
}

template <int kD, AttentionNormalizer kKind>
__global__ void __launch_bounds__(kDkvThreads, 1)
    MmaDkvKernel(AttentionParams p, bf16* dk, bf16* dv, const bf16* dout, const bf16* q,
                 const bf16* k, const bf16* v, const float* row_dots, const float* lse) {
  constexpr int kQ = kDkvQueryTile<kD>, kQueryTiles = kQ / 8, kTile = kQ * kD;
  constexpr bool kRowDot = kKind != AttentionNormalizer::kSigmoid;  // sigmoid's ds needs no D
  constexpr bool kSoftpick = kKind == AttentionNormalizer::kSoftpick;  // its p reads e^-lse
  constexpr int kStaged = 2;  // bf16 tiles staged per item: q, dout
  NormalizerArgs n = p.norm;
  n.kind = kKind;
  const AttentionDims& dims = p.dims;
  const int bias = dims.bias_keys();
  const int b = blockIdx.y / dims.kv_heads, kv = blockIdx.y % dims.kv_heads;
  const int j0 = blockIdx.x * kBwdRows;
  const int warp = threadIdx.x / 32, lane = threadIdx.x & 31, g = lane / 4, t = lane & 3;
  const int group = warp / 4, warp_key0 = j0 + 16 * (warp % 4);
  const HeadView kv_head = KeyHead(dims, b, kv);

  extern __shared__ __align__(16) unsigned char smem_bytes[];
  bf16* k_tile = reinterpret_cast<bf16*>(AlignedTiles<kD>(smem_bytes));
  bf16* v_tile = k_tile + kBwdRows * kD;
  bf16* staged = v_tile + kBwdRows * kD;  // [stage][group][q, dout][kQ][kD]
  float* lse_rows = reinterpret_cast<float*>(staged + 2 * kDkvGroups * kStaged * kTile);
  float* dot_rows = lse_rows + 2 * kDkvGroups * kQ;  // [2][2][kQ], as lse_rows
  float* neg_rows = dot_rows + 2 * kDkvGroups * kQ;  // softpick's e^-lse, as lse_rows
  const float* neg_exps = row_dots + dims.rows();
  const auto tile_of = [&](int stage, int grp, int tensor) {
    return staged + ((stage * kDkvGroups + grp) * kStaged + tensor) * kTile;
  };
  const auto rows_of = [&](float* rows, int stage, int grp) {
    return rows + (stage * kDkvGroups + grp) * kQ;
  };
  LoadTileAsync<kBwdRows, kD, kDkvThreads>(k_tile, k, kv_head, j0, dims.keys);
  LoadTileAsync<kBwdRows, kD, kDkvThreads>(v_tile, v, kv_head, j0, dims.keys);
  CopyAsyncCommit();

  // Work items: (query head of the group, query tile that sees some key of this block), in
  // pairs: item 2 pair + grp goes to warp group grp.
  const int first_query = max(0, j0 - bias) / kQ * kQ;
  const int tiles_per_head = (dims.seq - first_query + kQ - 1) / kQ;
  const int items = tiles_per_head * dims.group(), pairs = (items + 1) / 2;
  const auto item_head = [&](int item) { return kv * dims.group() + item / tiles_per_head; };
  const auto item_row0 = [&](int item) { return first_query + (item % tiles_per_head) * kQ; };
  // Stages the q and dout tiles and the lse and D rows of a pair's items (cp.async, one
  // group).
  const auto issue = [&](int pair) {
    const int stage = pair & 1;
    for (int grp = 0; grp < kDkvGroups; ++grp) {
      const int item = kDkvGroups * pair + grp;
      if (item >= items) break;
      const int h = item_head(item), row0 = item_row0(item);
      const HeadView q_head = QueryHead(dims, b, h);
      LoadTileAsync<kQ, kD, kDkvThreads>(tile_of(stage, grp, 0), q, q_head, row0, dims.seq);
      LoadTileAsync<kQ, kD, kDkvThreads>(tile_of(stage, grp, 1), dout, q_head, row0, dims.seq);
      if (threadIdx.x < kQ) {
        const int row = row0 + threadIdx.x;
        const bool valid = row < dims.seq;
        const int64_t at = RowIndex(dims, b, h, valid ? row : 0);
        CopyAsync4(rows_of(lse_rows, stage, grp) + threadIdx.x, lse + at, valid);
        if (kRowDot) CopyAsync4(rows_of(dot_rows, stage, grp) + threadIdx.x, row_dots + at, valid);
        if (kSoftpick) {
          CopyAsync4(rows_of(neg_rows, stage, grp) + threadIdx.x, neg_exps + at, valid);
        }
      }
    }
    CopyAsyncCommit();
  };

  float dk_acc[kD / 8][4] = {}, dv_acc[kD / 8][4] = {};
  issue(0);
  for (int pair = 0; pair < pairs; ++pair) {
    if (pair + 1 < pairs) {
      issue(pair + 1);
      CopyAsyncWait<1>();
    } else {
      CopyAsyncWait<0>();
    }
    if constexpr (kUseWgmma<kD>) FenceSharedForWgmma();
    __syncthreads();
    const int stage = pair & 1;
    const int item = kDkvGroups * pair + group, row0 = item < items ? item_row0(item) : 0;
    // Skip when this group has no item, or none of this warp's keys (with wgmma, which takes
    // the whole warpgroup: of the block's keys) exists and is seen by its queries. A warp of
    // a warpgroup that skipped a wgmma the others issue would hang them (.sync.aligned).
    const int first_key = kUseWgmma<kD> ? j0 : warp_key0;
    if (item < items && first_key <= row0 + kQ - 1 + bias && first_key < dims.keys) {
      const bf16* q_tile = tile_of(stage, group, 0);
      const bf16* dout_tile = tile_of(stage, group, 1);
      const float* tile_lse = rows_of(lse_rows, stage, group);
      const float* tile_dot = rows_of(dot_rows, stage, group);
      const float* tile_neg = rows_of(neg_rows, stage, group);
      float w[kQueryTiles][4] = {}, ds[kQueryTiles][4] = {};  // s^T, dp^T; p^T, ds^T in place
      if constexpr (kUseWgmma<kD>) {
        const WgmmaGroup wgmma;
        WgmmaRowsTimesRowsT(w, SharedAddress(k_tile), SharedAddress(q_tile));
        WgmmaRowsTimesRowsT(ds, SharedAddress(v_tile), SharedAddress(dout_tile));
      } else {
        RowBlockTimesRowsT<kD>(w, k_tile, q_tile, warp % 4);
        RowBlockTimesRowsT<kD>(ds, v_tile, dout_tile, warp % 4);
      }
#pragma unroll
      for (int nt = 0; nt < kQueryTiles; ++nt) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int local = 8 * nt + 2 * t + (e & 1);
          const WeightGrad wg = WeightGradOf(n, n.scale * w[nt][e], tile_lse[local], ds[nt][e],
                                             tile_dot[local], kSoftpick ? tile_neg[local] : 0.0f);
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
      if constexpr (kUseWgmma<kD>) {
        uint32_t pa[4][4], dsa[4][4];
        AFragments(pa, w);
        AFragments(dsa, ds);
        const WgmmaGroup wgmma;
        WgmmaFragmentsTimesRows(dv_acc, pa, SharedAddress(dout_tile));
        WgmmaFragmentsTimesRows(dk_acc, dsa, SharedAddress(q_tile));
      } else {
        FragmentsTimesRows<kD>(dv_acc, w, dout_tile);
        FragmentsTimesRows<kD>(dk_acc, ds, q_tile);
      }
    }
    __syncthreads();
  }
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
  if (dk != nullptr) AccumulateFragments<kD>(dk, kv_head, warp_key0, dims.keys, dk_acc, n.scale);
  if (dv != nullptr) AccumulateFragments<kD>(dv, kv_head, warp_key0, dims.keys, dv_acc, 1.0f);
}
}  // namespace

void LaunchMmaDkv(cudaStream_t stream, const AttentionParams& p, const Tensor& dk, const Tensor& dv,
                  const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v,
                  const Tensor& row_dots, const Tensor& lse) {
  SL_CHECK(row_dots.dtype() == DType::kF32 && row_dots.numel() == RowDotArrays(p) * lse.numel());
  DispatchMmaKernel(p, [&](auto head_dim, auto kind) {
    constexpr int kD = decltype(head_dim)::value;
    constexpr AttentionNormalizer kKind = decltype(kind)::value;
    auto kernel = MmaDkvKernel<kD, kKind>;
    const size_t smem = DkvSmem<kD>();
    AllowSharedMemory(kernel, smem);
    const dim3 grid((p.dims.keys + kBwdRows - 1) / kBwdRows, p.dims.batch * p.dims.kv_heads);
    kernel<<<grid, kDkvThreads, smem, stream>>>(
        p, dk.empty() ? nullptr : Ptr<bf16>(dk), dv.empty() ? nullptr : Ptr<bf16>(dv),
        Ptr<bf16>(dout), Ptr<bf16>(q), Ptr<bf16>(k), Ptr<bf16>(v), row_dots.f32(), lse.f32());
    SL_CUDA_LAUNCH_CHECK();
  });
}

}  // namespace cuda
}  // namespace sinklab

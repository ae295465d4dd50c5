// Tensor-core attention backward, dq (attention_backward_mma.cuh): bf16, head dims 64 and 128.
//
// Tiling plan: one block of 4 warps per (64-query tile, b * h); warp w owns queries
// [16 w, 16 w + 16). The query and dout tiles are staged once; 64-key tiles of k and v stream
// through two buffers (cp.async, swizzled; attention_mma.cuh). Per key tile: S = Q K^T and
// dP = dO V^T (16 x 64 per warp, fp32), ds from the row's lse and D_i (registers: the quad of
// the row computes D_i = dout_i . out_i once, or dout_i . C_i for clipped softmax, C its
// fp32 unclipped_values, and stores it in row_dots for the dk/dv kernel), then dQ += dS K with
// dS rounded to bf16 A fragments. Query tiles are issued longest first across heads (causal
// balance; LongestFirstBlock).
#include "layers/cuda/attention_backward_mma.cuh"
#include "layers/cuda/attention_wgmma.cuh"

namespace sinklab {
namespace cuda {
namespace {

template <int kD, AttentionNormalizer kKind>
__global__ void __launch_bounds__(kBwdThreads, kD == 64 ? 4 : 1)
    MmaDqKernel(AttentionParams p, bf16* dq, float* row_dots, const bf16* dout, const bf16* q,
                const bf16* k, const bf16* v, const bf16* out, const float* unclipped,
                const float* lse, bool assign) {
  constexpr int kKeyTiles = kBwdRows / 8;
  NormalizerArgs n = p.norm;
  n.kind = kKind;
  const AttentionDims& dims = p.dims;
  const int bias = dims.bias_keys();
  const auto [b, h, i0] = LongestFirstBlock<kBwdRows>(dims);
  const int warp = threadIdx.x / 32, lane = threadIdx.x & 31, g = lane / 4, t = lane & 3;
  const int warp_row0 = i0 + 16 * warp;
  const HeadView q_head = QueryHead(dims, b, h), kv_head = KeyHead(dims, b, h / dims.group());

  extern __shared__ __align__(16) unsigned char smem_bytes[];
  bf16* q_tile = reinterpret_cast<bf16*>(AlignedTiles<kD>(smem_bytes));
  bf16* dout_tile = q_tile + kBwdRows * kD;
  bf16* k_tiles = dout_tile + kBwdRows * kD;    // [2][64][kD]
  bf16* v_tiles = k_tiles + 2 * kBwdRows * kD;  // [2][64][kD]
  LoadTileAsync<kBwdRows, kD, kBwdThreads>(q_tile, q, q_head, i0, dims.seq);
  LoadTileAsync<kBwdRows, kD, kBwdThreads>(dout_tile, dout, q_head, i0, dims.seq);
  CopyAsyncCommit();
  const auto issue = [&](int tile) {
    const int buffer = tile & 1;
    LoadTileAsync<kBwdRows, kD, kBwdThreads>(k_tiles + buffer * kBwdRows * kD, k, kv_head,
                                             tile * kBwdRows, dims.keys);
    LoadTileAsync<kBwdRows, kD, kBwdThreads>(v_tiles + buffer * kBwdRows * kD, v, kv_head,
                                             tile * kBwdRows, dims.keys);
    CopyAsyncCommit();
  };
  const int key_end = min(dims.keys, i0 + kBwdRows + bias);
  const int tiles = (key_end + kBwdRows - 1) / kBwdRows;
  issue(0);

  // Rows g and g + 8: lse, lse log2 e, e^-lse (softpick), D.
  float row_lse[2], row_lse2[2], row_neg[2], row_dot[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int row = warp_row0 + g + 8 * r;
    row_lse[r] = row < dims.seq ? lse[RowIndex(dims, b, h, row)] : 0.0f;
    row_lse2[r] = row_lse[r] * kLog2e;
    row_neg[r] = kKind == AttentionNormalizer::kSoftpick ? __expf(-row_lse[r]) : 0.0f;
    float partial = 0.0f;
    if (kKind == AttentionNormalizer::kClippedSoftmax) {  // dout_i . C_i = sum_j sm_ij dsm_ij
      partial = PartialRowDot<kD>(dout, unclipped, q_head, row, dims.seq, t, 4);
    } else if (UsesOutputDot(n)) {
      partial = PartialRowDot<kD>(dout, out, q_head, row, dims.seq, t, 4);
    }
    row_dot[r] = QuadSum(partial);
    if (t == 0 && row < dims.seq) {
      row_dots[RowIndex(dims, b, h, row)] = row_dot[r];
      if (kKind == AttentionNormalizer::kSoftpick) {  // e^-lse, for the dk/dv kernel's weights
        row_dots[dims.rows() + RowIndex(dims, b, h, row)] = row_neg[r];
      }
    }
  }
  if (dq == nullptr) {  // the dk/dv kernel's D_i only
    CopyAsyncWait<0>();
    return;
  }

  float acc[kD / 8][4] = {};
  for (int tile = 0; tile < tiles; ++tile) {
    if (tile + 1 < tiles) {
      issue(tile + 1);
      CopyAsyncWait<1>();
    } else {
      CopyAsyncWait<0>();
    }
    if constexpr (kUseWgmma<kD>) FenceSharedForWgmma();
    __syncthreads();
    const int j0 = tile * kBwdRows;
    // (Every key tile has a key that the block's last row sees: with wgmma, which takes the
    // whole warpgroup, no warp skips.)
    if (kUseWgmma<kD> || j0 <= warp_row0 + 15 + bias) {
      const bf16* k_tile = k_tiles + (tile & 1) * kBwdRows * kD;
      const bf16* v_tile = v_tiles + (tile & 1) * kBwdRows * kD;
      float s[kKeyTiles][4] = {}, ds[kKeyTiles][4] = {};  // ds: dp, then ds in place
      if constexpr (kUseWgmma<kD>) {
        const WgmmaGroup wgmma;
        WgmmaRowsTimesRowsT(s, SharedAddress(q_tile), SharedAddress(k_tile));
        WgmmaRowsTimesRowsT(ds, SharedAddress(dout_tile), SharedAddress(v_tile));
      } else {
        RowBlockTimesRowsT<kD>(s, q_tile, k_tile, warp);
        RowBlockTimesRowsT<kD>(ds, dout_tile, v_tile, warp);
      }
#pragma unroll
      for (int nt = 0; nt < kKeyTiles; ++nt) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const Score score =
              BackwardScoreOf<kKind>(s[nt][e], n.scale, row_lse[e / 2], row_lse2[e / 2]);
          ds[nt][e] = WeightGradOf(n, score, ds[nt][e], row_dot[e / 2], row_neg[e / 2]).ds;
        }
      }
      if (j0 + kBwdRows - 1 > warp_row0 + bias || j0 + kBwdRows > dims.keys) {
#pragma unroll
        for (int nt = 0; nt < kKeyTiles; ++nt) {
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const int row = warp_row0 + g + 8 * (e / 2), key = j0 + 8 * nt + 2 * t + (e & 1);
            if (key > row + bias || key >= dims.keys) ds[nt][e] = 0.0f;
          }
        }
      }
      if constexpr (kUseWgmma<kD>) {
        uint32_t dsa[4][4];
        AFragments(dsa, ds);
        const WgmmaGroup wgmma;
        WgmmaFragmentsTimesRows(acc, dsa, SharedAddress(k_tile));
      } else {
        FragmentsTimesRows<kD>(acc, ds, k_tile);
      }
    }
    __syncthreads();
  }
  AccumulateFragments<kD>(dq, q_head, warp_row0, dims.seq, acc, n.scale, assign);
}

}  // namespace

void LaunchMmaDq(cudaStream_t stream, const AttentionParams& p, const Tensor& dq,
                 const Tensor& row_dots, const Tensor& dout, const Tensor& q, const Tensor& k,
                 const Tensor& v, const Tensor& out, const Tensor& unclipped_values,
                 const Tensor& lse, bool assign) {
  SL_CHECK(row_dots.dtype() == DType::kF32 && row_dots.numel() == RowDotArrays(p) * lse.numel());
  DispatchMmaKernel(p, [&](auto head_dim, auto kind) {
    constexpr int kD = decltype(head_dim)::value;
    auto kernel = MmaDqKernel<kD, decltype(kind)::value>;
    const size_t smem = sizeof(bf16) * kBwdRows * kD * 6 + kTileAlign;
    AllowSharedMemory(kernel, smem);
    const dim3 grid = LongestFirstGrid(p.dims, kBwdRows);
    kernel<<<grid, kBwdThreads, smem, stream>>>(
        p, dq.empty() ? nullptr : Ptr<bf16>(dq), row_dots.f32(), Ptr<bf16>(dout), Ptr<bf16>(q),
        Ptr<bf16>(k), Ptr<bf16>(v), Ptr<bf16>(out),
        unclipped_values.empty() ? nullptr : unclipped_values.f32(), lse.f32(), assign);
    SL_CUDA_LAUNCH_CHECK();
  });
}

}  // namespace cuda
}  // namespace sinklab

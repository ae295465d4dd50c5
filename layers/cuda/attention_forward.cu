// Fused causal attention forward (flash-style, Dao et al. 2022): out = sum_j p_ij v_j and the
// per-row lse of every normalizer, with no [S, K] matrix in memory.
//
// bf16 with head dims 64 and 128 takes the tensor-core kernel of attention_forward_mma.cu.
// Tiling plan (generic path, any d <= 128, f32 or bf16): one block of 128 threads per
// (32-query tile, b * h). The block stages its queries in shared memory once, then streams
// 32-key tiles of k and v (kv head h / (H / Hkv)) through shared memory, keys [0, the last
// key its last query sees). Per key tile: scores s = scale * q . k in registers (a quad per
// query row, attention_common.cuh), the masked keys (j > i + K - S) dropped, the running max
// raised and the weights formed (attention_normalizer.cuh), and O += w v with the weights
// passed along the quad by shuffles. fp32 throughout; out is rounded once at the end.
// Clipped softmax takes two passes over the keys: its softmax lse first, then the clipped
// weights p with that lse, accumulating next to O its unclipped_values C += w v with
// w = UnclippedWeight(p) (layers/backend.h; kClipped instantiations only).
//
// probs (statistics steps only) are written by attention_probs.cu from the stored lse.
// Where the spec allows it (model.attention.kernel AUTO), softmax, softmax1, the sink logit
// and the KV bias run cuDNN's softmax over the real keys instead (cudnn_attention.cc), the
// virtual logit and the bias key then folded into out and lse (attention_extra_keys.h).
#include "layers/cuda/attention_common.cuh"
#include "layers/cuda/attention_extra_keys.h"
#include "layers/cuda/cuda_backend.h"

namespace sinklab {
namespace cuda {
namespace {

// kClipped: clipped softmax (p.norm.kind), which also writes its unclipped_values.
template <typename T, int kMaxD, bool kClipped>
__global__ void __launch_bounds__(kGenericThreads)
    GenericForwardKernel(AttentionParams p, T* out, float* lse, float* unclipped, const T* q,
                         const T* k, const T* v) {
  const AttentionDims& dims = p.dims;
  const NormalizerArgs& n = p.norm;
  const int d = dims.d, ld = TileLd(d), bias = dims.bias_keys();
  const int b = blockIdx.y / dims.heads, h = blockIdx.y % dims.heads;
  const int i0 = blockIdx.x * kGenericRows;
  const int quad = threadIdx.x & 3, row = i0 + threadIdx.x / 4;
  const HeadView q_head = QueryHead(dims, b, h), kv_head = KeyHead(dims, b, h / dims.group());

  extern __shared__ float smem[];
  float* q_tile = smem;                        // [32][ld] this block's queries
  float* k_tile = q_tile + kGenericRows * ld;  // [32][ld] the current keys
  float* v_tile = k_tile + kGenericRows * ld;  // [32][ld] their values
  LoadTile(q_tile, ld, q, q_head, i0, dims.seq, d);
  const float* my_query = q_tile + (threadIdx.x / 4) * ld;

  const int key_end = min(dims.keys, i0 + kGenericRows + bias);  // keys the tile's rows see
  OnlineRow state = StartRow(n, SinkLogitOf(p, h));
  float row_lse = 0.0f;
  float o[kMaxD / 4] = {};
  float c[kClipped ? kMaxD / 4 : 1] = {};  // clipped softmax's C
  for (int pass = kClipped ? 0 : 1; pass < 2; ++pass) {
    const bool clipped_weights = kClipped && pass == 1;  // else online weights
    for (int j0 = 0; j0 < key_end; j0 += kGenericRows) {
      __syncthreads();  // the previous tile is consumed (and q_tile is complete)
      LoadTile(k_tile, ld, k, kv_head, j0, dims.keys, d);
      if (pass == 1) LoadTile(v_tile, ld, v, kv_head, j0, dims.keys, d);
      __syncthreads();
      float s[kColsPerLane];
      RowDots(my_query, k_tile + quad * ld, ld, d, s);
      bool visible[kColsPerLane];
      float tile_max = -INFINITY;
#pragma unroll
      for (int m = 0; m < kColsPerLane; ++m) {
        const int j = j0 + quad + 4 * m;
        visible[m] = j < dims.keys && j <= row + bias;
        s[m] *= n.scale;
        if (visible[m]) tile_max = fmaxf(tile_max, s[m]);
      }
      float w[kColsPerLane];
      if (clipped_weights) {
        float unclipped_w[kColsPerLane];
#pragma unroll
        for (int m = 0; m < kColsPerLane; ++m) {
          w[m] = visible[m] ? WeightFromLse(n, s[m], row_lse) : 0.0f;
          unclipped_w[m] = UnclippedWeight(n, w[m]);
        }
        if constexpr (kClipped) AccumulateRows<kMaxD>(c, unclipped_w, v_tile, ld, d);
      } else {
        const float alpha = RaiseMax(n, state, QuadMax(tile_max));
        const float e_neg_m = __expf(-state.m);
        float mass = 0.0f;
#pragma unroll
        for (int m = 0; m < kColsPerLane; ++m) {
          const OnlineTerm term =
              visible[m] ? OnlineTermOf(n, state.m, e_neg_m, s[m]) : OnlineTerm{0.0f, 0.0f};
          w[m] = term.weight;
          mass += term.mass;
        }
        state.l += QuadSum(mass);
#pragma unroll
        for (int m = 0; m < kMaxD / 4; ++m) o[m] *= alpha;
      }
      if (pass == 1) AccumulateRows<kMaxD>(o, w, v_tile, ld, d);
    }
    if (pass == 0) FinishRow(n, state, &row_lse);  // clipped softmax: the softmax lse
  }
  const float factor = kClipped ? 1.0f : FinishRow(n, state, &row_lse);
  if (row >= dims.seq) return;
  T* out_row = out + q_head.offset + row * q_head.stride;
#pragma unroll
  for (int m = 0; m < kMaxD / 4; ++m) {
    if (quad + 4 * m < d) out_row[quad + 4 * m] = FromF<T>(o[m] * factor);
  }
  if constexpr (kClipped) {
    float* c_row = unclipped + q_head.offset + row * q_head.stride;
#pragma unroll
    for (int m = 0; m < kMaxD / 4; ++m) {
      if (quad + 4 * m < d) c_row[quad + 4 * m] = c[m];
    }
  }
  if (quad == 0) lse[RowIndex(dims, b, h, row)] = row_lse;
}

template <typename T>
void LaunchGenericForward(cudaStream_t stream, const AttentionParams& p, const Tensor& out,
                          const Tensor& lse, const Tensor& unclipped_values, const Tensor& q,
                          const Tensor& k, const Tensor& v) {
  const auto launch = [&](auto kernel) {
    const size_t smem = 3 * TileBytes(p.dims.d);
    AllowSharedMemory(kernel, smem);
    const dim3 grid((p.dims.seq + kGenericRows - 1) / kGenericRows, p.dims.batch * p.dims.heads);
    float* unclipped = unclipped_values.empty() ? nullptr : unclipped_values.f32();
    kernel<<<grid, kGenericThreads, smem, stream>>>(p, Ptr<T>(out), lse.f32(), unclipped, Ptr<T>(q),
                                                    Ptr<T>(k), Ptr<T>(v));
    SL_CUDA_LAUNCH_CHECK();
  };
  DispatchHeadDim(p.dims.d, [&](auto max_d) {
    constexpr int kMaxD = decltype(max_d)::value;
    if (p.norm.kind == AttentionNormalizer::kClippedSoftmax) {
      launch(GenericForwardKernel<T, kMaxD, true>);
    } else {
      launch(GenericForwardKernel<T, kMaxD, false>);
    }
  });
}

}  // namespace

}  // namespace cuda

void CudaBackend::AttentionForward(const Tensor& out, const Tensor& probs, const Tensor& lse,
                                   const Tensor& unclipped_values, const Tensor& q, const Tensor& k,
                                   const Tensor& v, const Tensor& sink_logit,
                                   const AttentionSpec& spec) {
  const cuda::AttentionDims dims =
      cuda::CheckAttentionShapes("AttentionForward", out, lse, q, k, v, sink_logit, spec);
  cuda::CheckUnclippedValues("AttentionForward", unclipped_values, q, spec);
  if (out.numel() == 0) return;
  const cuda::AttentionParams params = cuda::ParamsOf(dims, spec, sink_logit);
  if (TryCudnnAttentionForward(out, probs, lse, unclipped_values, q, k, v, spec)) {
    // softmax1's or the sink's virtual logit, the KV bias key
    if (spec.normalizer != AttentionNormalizer::kSoftmax || dims.bias_keys() > 0) {
      cuda::LaunchFoldExtraKeys(stream_, out, lse, q, k, v, Tensor(), Tensor(), sink_logit, spec);
    }
    return;
  }
  cuda::DispatchFloat(q.dtype(), [&](auto t) {
    using T = decltype(t);
    if (cuda::MmaAttentionSupports(dims, {&out, &q, &k, &v})) {
      cuda::LaunchMmaForward(stream_, params, out, lse, unclipped_values, q, k, v);
    } else {
      cuda::LaunchGenericForward<T>(stream_, params, out, lse, unclipped_values, q, k, v);
    }
  });
  if (!probs.empty()) cuda::LaunchAttentionProbs(stream_, params, probs, lse, q, k);
}

bool CudaBackend::AttentionForwardBiasApart(const Tensor& out, const Tensor& lse, const Tensor& q,
                                            const Tensor& k, const Tensor& v, const Tensor& k_bias,
                                            const Tensor& v_bias, const Tensor& sink_logit,
                                            const AttentionSpec& spec) {
  cuda::CheckAttentionShapes("AttentionForwardBiasApart", out, lse, q, k, v, sink_logit, spec);
  // cuDNN's softmax over the S real keys, then the bias key (and any virtual logit) folded
  // in; taken only where cuDNN has the backward's plan for every row too, which then follows
  // this path.
  if (out.numel() == 0 || !cuda::AllAligned16(k_bias, v_bias) ||
      !CudnnBackwardRunsEveryRow(q, k, spec) ||
      !TryCudnnAttentionForward(out, Tensor(), lse, Tensor(), q, k, v, spec)) {
    return false;
  }
  cuda::LaunchFoldExtraKeys(stream_, out, lse, q, k, v, k_bias, v_bias, sink_logit, spec);
  return true;
}

}  // namespace sinklab

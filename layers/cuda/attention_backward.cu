// Fused causal attention backward: the weights are recomputed from q, k and the forward's lse
// (probs are never read), and every gradient is accumulated (+=) in a fixed order, with no
// atomics (deterministic).
//
// Per visible (i, j): s_ij = scale q_i . k_j, dp_ij = dout_i . v_j, (p_ij, ds_ij) from
// WeightGradOf (attention_normalizer.cuh) with the row sum D_i, then
//   dq_i += scale sum_j ds_ij k_j,   dk_j += scale sum_i ds_ij q_i,   dv_j += sum_i p_ij dout_i.
// D_i = sum_j p_ij dp_ij = dout_i . out_i for softmax, softmax1, sink logit and softpick (out
// is the forward's output); clipped softmax needs sum_j sm_ij dsm_ij instead, which is
// dout_i . C_i with C the forward's fp32 unclipped_values (layers/backend.h); sigmoid needs
// none.
//
// bf16 with head dims 64 and 128 takes the tensor-core dq, dk and dv kernels of
// attention_backward_dq_mma.cu and attention_backward_dkv_mma.cu; the rest takes the generic
// kernels here (tiles of attention_common.cuh, any d <= 128, f32 or bf16):
// - DqKernel, one block per (32-query tile, b * h): the same key loop as the forward,
//   dq accumulated in registers (a quad per query row).
// - DkvKernel, one block per (32-key tile, b * kv head): the key tile stays in shared memory;
//   the block loops over the query heads of its group and their query tiles that see the keys,
//   in order, with the score tile transposed (a quad per key row), dk and dv in registers.
//   The query tile's lse and D_i are staged in shared memory first.
// Both paths: SinkLogitPartialsKernel, one block per (chunk of rows, head), and
// SinkLogitSumKernel: dL/db_h += sum_{b, i} -e^(b_h - lse_i) D_i (kSinkLogit: dp_ij/db =
// -p_ij p_virtual), per chunk into the backend's reduction scratch, then the chunks in order.
#include <algorithm>

#include "layers/cuda/attention_common.cuh"
#include "layers/cuda/cuda_backend.h"

namespace sinklab {
namespace cuda {
namespace {

// D_i = dout_i . x_i of query `row` (this quad's row), from its staged dout row and x in
// global memory (out, or clipped softmax's fp32 unclipped_values, laid out as out);
// quad-reduced, 0 past the sequence.
template <typename T>
__device__ __forceinline__ float OutputDot(const float* dout_row, const T* out, HeadView view,
                                           int row, int seq, int d) {
  float acc = 0.0f;
  if (row < seq) {
    const T* out_row = out + view.offset + row * view.stride;
    for (int c = threadIdx.x & 3; c < d; c += 4) acc = fmaf(dout_row[c], ToF(out_row[c]), acc);
  }
  return QuadSum(acc);
}

// x[i] += scale * acc[m] for this lane's columns quad + 4m < d of one row.
template <typename T, int kMaxD>
__device__ __forceinline__ void AccumulateRow(T* x_row, const float (&acc)[kMaxD / 4], float scale,
                                              int d) {
  const int quad = threadIdx.x & 3;
#pragma unroll
  for (int m = 0; m < kMaxD / 4; ++m) {
    const int c = quad + 4 * m;
    if (c < d) x_row[c] = FromF<T>(ToF(x_row[c]) + scale * acc[m]);
  }
}

template <typename T, int kMaxD>
__global__ void __launch_bounds__(kGenericThreads)
    DqKernel(AttentionParams p, T* dq, const T* dout, const T* q, const T* k, const T* v,
             const T* out, const float* unclipped, const float* lse) {
  const AttentionDims& dims = p.dims;
  const NormalizerArgs& n = p.norm;
  const int d = dims.d, ld = TileLd(d), bias = dims.bias_keys();
  const int b = blockIdx.y / dims.heads, h = blockIdx.y % dims.heads;
  const int i0 = blockIdx.x * kGenericRows;
  const int quad = threadIdx.x & 3, row = i0 + threadIdx.x / 4;
  const HeadView q_head = QueryHead(dims, b, h), kv_head = KeyHead(dims, b, h / dims.group());

  extern __shared__ float smem[];
  float* q_tile = smem;
  float* dout_tile = q_tile + kGenericRows * ld;
  float* k_tile = dout_tile + kGenericRows * ld;
  float* v_tile = k_tile + kGenericRows * ld;
  LoadTile(q_tile, ld, q, q_head, i0, dims.seq, d);
  LoadTile(dout_tile, ld, dout, q_head, i0, dims.seq, d);
  __syncthreads();
  const float* my_query = q_tile + (threadIdx.x / 4) * ld;
  const float* my_dout = dout_tile + (threadIdx.x / 4) * ld;
  const float row_lse = row < dims.seq ? lse[RowIndex(dims, b, h, row)] : 0.0f;
  float row_dot = 0.0f;
  if (UsesOutputDot(n)) {
    row_dot = OutputDot(my_dout, out, q_head, row, dims.seq, d);
  } else if (n.kind == AttentionNormalizer::kClippedSoftmax) {  // sum_j sm_ij dsm_ij
    row_dot = OutputDot(my_dout, unclipped, q_head, row, dims.seq, d);
  }

  float acc[kMaxD / 4] = {};
  const int key_end = min(dims.keys, i0 + kGenericRows + bias);
  for (int j0 = 0; j0 < key_end; j0 += kGenericRows) {
    __syncthreads();
    LoadTile(k_tile, ld, k, kv_head, j0, dims.keys, d);
    LoadTile(v_tile, ld, v, kv_head, j0, dims.keys, d);
    __syncthreads();
    float s[kColsPerLane], dp[kColsPerLane], ds[kColsPerLane];
    RowDots(my_query, k_tile + quad * ld, ld, d, s);
    RowDots(my_dout, v_tile + quad * ld, ld, d, dp);
#pragma unroll
    for (int m = 0; m < kColsPerLane; ++m) {
      const int j = j0 + quad + 4 * m;
      ds[m] = j < dims.keys && j <= row + bias
                  ? WeightGradOf(n, n.scale * s[m], row_lse, dp[m], row_dot).ds
                  : 0.0f;
    }
    AccumulateRows<kMaxD>(acc, ds, k_tile, ld, d);
  }
  if (row < dims.seq) {
    AccumulateRow<T, kMaxD>(dq + q_head.offset + row * q_head.stride, acc, n.scale, d);
  }
}

template <typename T, int kMaxD>
__global__ void __launch_bounds__(kGenericThreads)
    DkvKernel(AttentionParams p, T* dk, T* dv, const T* dout, const T* q, const T* k, const T* v,
              const T* out, const float* unclipped, const float* lse) {
  const AttentionDims& dims = p.dims;
  const NormalizerArgs& n = p.norm;
  const int d = dims.d, ld = TileLd(d), bias = dims.bias_keys();
  const int b = blockIdx.y / dims.kv_heads, g = blockIdx.y % dims.kv_heads;
  const int j0 = blockIdx.x * kGenericRows;
  const int quad = threadIdx.x & 3, local = threadIdx.x / 4, key = j0 + local;
  const HeadView kv_head = KeyHead(dims, b, g);

  extern __shared__ float smem[];
  float* k_tile = smem;                            // [32][ld] this block's keys
  float* v_tile = k_tile + kGenericRows * ld;      // their values
  float* q_tile = v_tile + kGenericRows * ld;      // the current query tile
  float* dout_tile = q_tile + kGenericRows * ld;   // its output gradients
  float* row_lse = dout_tile + kGenericRows * ld;  // [32] its lse
  float* row_dot = row_lse + kGenericRows;         // [32] its D_i
  LoadTile(k_tile, ld, k, kv_head, j0, dims.keys, d);
  LoadTile(v_tile, ld, v, kv_head, j0, dims.keys, d);
  const float* my_key = k_tile + local * ld;
  const float* my_value = v_tile + local * ld;

  float dk_acc[kMaxD / 4] = {}, dv_acc[kMaxD / 4] = {};
  // Query i sees key j0 iff i >= j0 - bias: earlier query tiles see none of the block's keys.
  const int first_tile = max(0, j0 - bias) / kGenericRows * kGenericRows;
  for (int h = g * dims.group(); h < (g + 1) * dims.group(); ++h) {
    const HeadView q_head = QueryHead(dims, b, h);
    for (int i0 = first_tile; i0 < dims.seq; i0 += kGenericRows) {
      __syncthreads();  // the previous query tile is consumed
      LoadTile(q_tile, ld, q, q_head, i0, dims.seq, d);
      LoadTile(dout_tile, ld, dout, q_head, i0, dims.seq, d);
      __syncthreads();
      {  // the query rows' statistics, in the query-row layout (quad = query i0 + local)
        const int query = i0 + local;
        const float query_lse = query < dims.seq ? lse[RowIndex(dims, b, h, query)] : 0.0f;
        float dot = 0.0f;
        if (UsesOutputDot(n)) {
          dot = OutputDot(dout_tile + local * ld, out, q_head, query, dims.seq, d);
        } else if (n.kind == AttentionNormalizer::kClippedSoftmax) {  // sum_j sm_ij dsm_ij
          dot = OutputDot(dout_tile + local * ld, unclipped, q_head, query, dims.seq, d);
        }
        if (quad == 0) {
          row_lse[local] = query_lse;
          row_dot[local] = dot;
        }
      }
      __syncthreads();
      // Transposed scores: this quad's key against queries i0 + quad + 4m.
      float s[kColsPerLane], dp[kColsPerLane], w[kColsPerLane], ds[kColsPerLane];
      RowDots(my_key, q_tile + quad * ld, ld, d, s);
      RowDots(my_value, dout_tile + quad * ld, ld, d, dp);
#pragma unroll
      for (int m = 0; m < kColsPerLane; ++m) {
        const int il = quad + 4 * m, i = i0 + il;
        const bool visible = i < dims.seq && key < dims.keys && key <= i + bias;
        const WeightGrad wg = visible
                                  ? WeightGradOf(n, n.scale * s[m], row_lse[il], dp[m], row_dot[il])
                                  : WeightGrad{0.0f, 0.0f};
        w[m] = wg.p;
        ds[m] = wg.ds;
      }
      AccumulateRows<kMaxD>(dv_acc, w, dout_tile, ld, d);
      AccumulateRows<kMaxD>(dk_acc, ds, q_tile, ld, d);
    }
  }
  if (key >= dims.keys) return;
  if (dk != nullptr) {
    AccumulateRow<T, kMaxD>(dk + kv_head.offset + key * kv_head.stride, dk_acc, n.scale, d);
  }
  if (dv != nullptr) {
    AccumulateRow<T, kMaxD>(dv + kv_head.offset + key * kv_head.stride, dv_acc, 1.0f, d);
  }
}

// partials[h * chunks + c] = sum over rows [c per, (c + 1) per) of the flattened (b, i) of
// -e^(b_h - lse_i) D_i, D_i = dout_i . out_i (a warp per row, in a fixed order).
template <typename T>
__global__ void SinkLogitPartialsKernel(AttentionParams p, double* partials, const T* dout,
                                        const T* out, const float* lse) {
  const AttentionDims& dims = p.dims;
  const int h = blockIdx.y, chunk = blockIdx.x, chunks = gridDim.x;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int rows = dims.batch * dims.seq, per = (rows + chunks - 1) / chunks;
  const float sink = SinkLogitOf(p, h);
  float acc = 0.0f;  // the same in every lane of a warp
  for (int row = chunk * per + warp; row < min(rows, (chunk + 1) * per); row += blockDim.x >> 5) {
    const int b = row / dims.seq, i = row - b * dims.seq;
    const int64_t at = QueryHead(dims, b, h).offset + i * int64_t{dims.heads} * dims.d;
    float dot = 0.0f;
    for (int c = lane; c < dims.d; c += 32) dot = fmaf(ToF(dout[at + c]), ToF(out[at + c]), dot);
    acc -= __expf(sink - lse[RowIndex(dims, b, h, i)]) * WarpSum(dot);
  }
  __shared__ double shared[32];
  const double total = BlockSum(lane == 0 ? double{acc} : 0.0, shared);
  if (threadIdx.x == 0) partials[h * chunks + chunk] = total;
}

// dsink[h] += sum_c partials[h * chunks + c], in order.
__global__ void SinkLogitSumKernel(float* dsink, const double* partials, int heads, int chunks) {
  const int h = blockIdx.x * blockDim.x + threadIdx.x;
  if (h >= heads) return;
  double total = 0.0;
  for (int c = 0; c < chunks; ++c) total += partials[h * chunks + c];
  dsink[h] += static_cast<float>(total);
}

template <typename T>
void LaunchGenericBackward(cudaStream_t stream, const AttentionParams& p, const Tensor& dq,
                           const Tensor& dk, const Tensor& dv, const Tensor& dout, const Tensor& q,
                           const Tensor& k, const Tensor& v, const Tensor& out,
                           const Tensor& unclipped_values, const Tensor& lse) {
  const AttentionDims& dims = p.dims;
  const float* unclipped = unclipped_values.empty() ? nullptr : unclipped_values.f32();
  DispatchHeadDim(dims.d, [&](auto max_d) {
    constexpr int kMaxD = decltype(max_d)::value;
    if (!dq.empty()) {
      auto kernel = DqKernel<T, kMaxD>;
      const size_t smem = 4 * TileBytes(dims.d);
      AllowSharedMemory(kernel, smem);
      const dim3 grid((dims.seq + kGenericRows - 1) / kGenericRows, dims.batch * dims.heads);
      kernel<<<grid, kGenericThreads, smem, stream>>>(p, Ptr<T>(dq), Ptr<T>(dout), Ptr<T>(q),
                                                      Ptr<T>(k), Ptr<T>(v), Ptr<T>(out), unclipped,
                                                      lse.f32());
      SL_CUDA_LAUNCH_CHECK();
    }
    if (!dk.empty() || !dv.empty()) {
      auto kernel = DkvKernel<T, kMaxD>;
      const size_t smem = 4 * TileBytes(dims.d) + 2 * kGenericRows * sizeof(float);
      AllowSharedMemory(kernel, smem);
      const dim3 grid((dims.keys + kGenericRows - 1) / kGenericRows, dims.batch * dims.kv_heads);
      kernel<<<grid, kGenericThreads, smem, stream>>>(
          p, dk.empty() ? nullptr : Ptr<T>(dk), dv.empty() ? nullptr : Ptr<T>(dv), Ptr<T>(dout),
          Ptr<T>(q), Ptr<T>(k), Ptr<T>(v), Ptr<T>(out), unclipped, lse.f32());
      SL_CUDA_LAUNCH_CHECK();
    }
  });
}

// `scratch` holds scratch_doubles doubles (CudaBackend's reduction scratch): one partial per
// (head, chunk of rows).
template <typename T>
void LaunchSinkLogitGrad(cudaStream_t stream, double* scratch, int scratch_doubles,
                         const AttentionParams& p, const Tensor& dsink_logit, const Tensor& dout,
                         const Tensor& out, const Tensor& lse) {
  CheckCuda(dsink_logit, "AttentionBackward dsink_logit");
  const int heads = p.dims.heads;
  SL_CHECK_MSG(
      dsink_logit.dtype() == DType::kF32 && dsink_logit.numel() == heads,
      absl::StrCat("AttentionBackward dsink_logit ", dsink_logit.ShapeString(), " for H=", heads));
  SL_CHECK_MSG(heads <= scratch_doubles,
               absl::StrCat("AttentionBackward: H=", heads, " above the reduction scratch"));
  const int chunks = std::min(64, scratch_doubles / heads);
  SinkLogitPartialsKernel<T><<<dim3(chunks, heads), kBlock, 0, stream>>>(p, scratch, Ptr<T>(dout),
                                                                         Ptr<T>(out), lse.f32());
  SL_CUDA_LAUNCH_CHECK();
  SinkLogitSumKernel<<<GridFor(heads, 32), 32, 0, stream>>>(dsink_logit.f32(), scratch, heads,
                                                            chunks);
  SL_CUDA_LAUNCH_CHECK();
}

}  // namespace
}  // namespace cuda

void CudaBackend::AttentionBackward(const Tensor& dq, const Tensor& dk, const Tensor& dv,
                                    const Tensor& dsink_logit, const Tensor& dout, const Tensor& q,
                                    const Tensor& k, const Tensor& v, const Tensor& sink_logit,
                                    const Tensor& out, const Tensor& unclipped_values,
                                    const Tensor& /*probs: recomputed*/, const Tensor& lse,
                                    const AttentionSpec& spec, GradWrite dqkv_write) {
  const cuda::AttentionDims dims =
      cuda::CheckAttentionShapes("AttentionBackward", out, lse, q, k, v, sink_logit, spec);
  cuda::CheckUnclippedValues("AttentionBackward", unclipped_values, q, spec);
  const auto same = [](const Tensor& a, const Tensor& b) {
    if (a.rank() != b.rank() || a.dtype() != b.dtype()) return false;
    for (int i = 0; i < a.rank(); ++i) {
      if (a.dim(i) != b.dim(i)) return false;
    }
    return true;
  };
  SL_CHECK_MSG(same(dout, q), absl::StrCat("AttentionBackward dout ", dout.ShapeString(), " vs q ",
                                           q.ShapeString()));
  for (const Tensor* grad : {&dq, &dk, &dv, &dout}) {
    cuda::CheckCuda(*grad, "AttentionBackward gradient");
  }
  SL_CHECK_MSG(dq.empty() || same(dq, q),
               absl::StrCat("AttentionBackward dq ", dq.ShapeString(), " vs q ", q.ShapeString()));
  SL_CHECK_MSG(dk.empty() || same(dk, k),
               absl::StrCat("AttentionBackward dk ", dk.ShapeString(), " vs k ", k.ShapeString()));
  SL_CHECK_MSG(dv.empty() || same(dv, v),
               absl::StrCat("AttentionBackward dv ", dv.ShapeString(), " vs v ", v.ShapeString()));
  // The generic kernels accumulate; kAssign starts them from 0 (also undoing a failed cuDNN
  // run's partial writes, and covering KV-bias keys when there are no queries). The
  // tensor-core kernels write every row themselves under kAssign.
  const auto zero_if_assign = [&] {
    if (dqkv_write != GradWrite::kAssign) return;
    for (const Tensor* grad : {&dq, &dk, &dv}) {
      if (grad->numel() > 0) Fill(*grad, 0.0f);
    }
  };
  if (q.numel() == 0) {
    zero_if_assign();
    return;
  }
  const cuda::AttentionParams params = cuda::ParamsOf(dims, spec, sink_logit);
  // The sink logit's gradient needs only dout, out and lse (whichever kernels ran).
  const auto sink_logit_grad = [&] {
    if (spec.normalizer != AttentionNormalizer::kSinkLogit || dsink_logit.empty()) return;
    cuda::DispatchFloat(q.dtype(), [&](auto t) {
      cuda::LaunchSinkLogitGrad<decltype(t)>(stream_, scratch_, kScratchDoubles, params,
                                             dsink_logit, dout, out, lse);
    });
  };
  // cuDNN's softmax backward with the lse of softmax1, the sink logit or the KV bias (their
  // extra logit folded in by the forward) is their backward for the real keys: p_j = e^(s_j -
  // lse), and D_i = dout_i . out_i counts the extra keys; the bias key's own share is added
  // after it (attention_extra_keys.h).
  if (TryCudnnAttentionBackward(dq, dk, dv, dout, q, k, v, out, unclipped_values, lse, spec,
                                dqkv_write)) {
    sink_logit_grad();
    return;
  }
  const bool assign = dqkv_write == GradWrite::kAssign;
  const bool mma = cuda::MmaAttentionSupports(dims, {&dq, &dk, &dv, &dout, &q, &k, &v, &out});
  if (!mma) zero_if_assign();
  cuda::DispatchFloat(q.dtype(), [&](auto t) {
    using T = decltype(t);
    if (mma) {
      // D_i of every row, written by the dq kernel (alone when dq is not asked for) and read
      // by the dk/dv kernel after it.
      const bool dkv = !dk.empty() || !dv.empty();
      if (dq.empty() && !dkv) return;
      const int64_t arrays = cuda::RowDotArrays(params);
      const Tensor row_dots(Workspace(arrays * lse.nbytes()), DType::kF32, Device::kCuda,
                            {arrays * lse.numel()});
      cuda::LaunchMmaDq(stream_, params, dq, row_dots, dout, q, k, v, out, unclipped_values, lse,
                        assign);
      if (dkv) cuda::LaunchMmaDkv(stream_, params, dk, dv, dout, q, k, v, row_dots, lse, assign);
    } else {
      cuda::LaunchGenericBackward<T>(stream_, params, dq, dk, dv, dout, q, k, v, out,
                                     unclipped_values, lse);
    }
  });
  sink_logit_grad();
}

void CudaBackend::AttentionBackwardBiasApart(
    const Tensor& dq, const Tensor& dk, const Tensor& dv, const Tensor& dk_bias,
    const Tensor& dv_bias, const Tensor& dsink_logit, const Tensor& dout, const Tensor& q,
    const Tensor& k, const Tensor& v, const Tensor& k_bias, const Tensor& v_bias,
    const Tensor& sink_logit, const Tensor& out, const Tensor& lse, const AttentionSpec& spec) {
  const cuda::AttentionDims dims =
      cuda::CheckAttentionShapes("AttentionBackwardBiasApart", out, lse, q, k, v, sink_logit, spec);
  SL_CHECK_MSG(dims.bias_keys() == 0 && dq.numel() == q.numel() && dk.numel() == k.numel() &&
                   dv.numel() == v.numel() && dout.numel() == q.numel(),
               absl::StrCat("AttentionBackwardBiasApart: q ", q.ShapeString(), " k ",
                            k.ShapeString(), " dq ", dq.ShapeString(), " dk ", dk.ShapeString(),
                            " dv ", dv.ShapeString(), " dout ", dout.ShapeString()));
  if (q.numel() == 0) return;
  if (TryCudnnAttentionBackwardBiasApart(dq, dk, dv, dk_bias, dv_bias, dout, q, k, v, k_bias,
                                         v_bias, out, lse, spec)) {
    if (spec.normalizer == AttentionNormalizer::kSinkLogit && !dsink_logit.empty()) {
      cuda::DispatchFloat(q.dtype(), [&](auto t) {
        cuda::LaunchSinkLogitGrad<decltype(t)>(stream_, scratch_, kScratchDoubles,
                                               cuda::ParamsOf(dims, spec, sink_logit),
                                               dsink_logit, dout, out, lse);
      });
    }
    return;
  }
  // cuDNN failed to run its plan: ours, on copies with the bias rows prepended.
  int64_t shape[Tensor::kMaxRank] = {k.dim(0), k.dim(1) + 1, k.dim(2), k.dim(3)};
  const size_t bytes = (k.nbytes() / k.dim(1) * (k.dim(1) + 1) + 255) / 256 * 256;
  char* base = static_cast<char*>(Grown(&bias_apart_rows_, &bias_apart_rows_bytes_, 4 * bytes));
  const auto rows = [&](int i) {
    return Tensor(base + i * bytes, k.dtype(), Device::kCuda, shape, 4);
  };
  const Tensor k_all = rows(0), v_all = rows(1), dk_all = rows(2), dv_all = rows(3);
  PrependRows(k_all, k_bias, k);
  PrependRows(v_all, v_bias, v);
  AttentionBackward(dq, dk_all, dv_all, dsink_logit, dout, q, k_all, v_all, sink_logit, out,
                    Tensor(), Tensor(), lse, spec, GradWrite::kAssign);
  Fill(dk, 0.0f);
  Fill(dv, 0.0f);
  PrependRowsBackward(dk_bias, dk, dk_all);
  PrependRowsBackward(dv_bias, dv, dv_all);
}

}  // namespace sinklab

// The extra keys folded around cuDNN's softmax attention (attention_extra_keys.h): the
// forward fold, d / 8 lanes per row (b, i, h) with a 16-byte packet each; the bias key's
// backward, the same per row for dq and the per-row p' and dS', then a block per (b, kv
// head) for dk' and dv'. Rows must be 16-byte aligned (d = 64 or 128, aligned tensors: what
// the cuDNN path requires anyway).
#include "layers/cuda/attention_common.cuh"
#include "layers/cuda/attention_extra_keys.h"

namespace sinklab {
namespace cuda {
namespace {

AttentionDims DimsOf(const Tensor& q, const Tensor& k) {
  return AttentionDims{static_cast<int>(q.dim(0)), static_cast<int>(q.dim(1)),
                       static_cast<int>(k.dim(1)), static_cast<int>(q.dim(2)),
                       static_cast<int>(k.dim(2)), static_cast<int>(q.dim(3))};
}

// Where the extra keys and values of (b, kv head g) are: key j at k + b * batch_stride + j *
// key_stride + g * d (and the same in v). The KV bias key: row 0 of k, v [B, S + 1, Hkv, d]
// (batch_stride (S + 1) Hkv d), or one [Hkv, d] pair for every b (batch_stride 0); the lead
// rows: rows 0 .. count - 1 of k, v [B, S, Hkv, d]. Query i sees key j when j <= i +
// query_key_offset (its own row among the keys: 1 past the bias key, 0 for lead rows); the
// first count - query_key_offset queries (the lead rows) see no keys of cuDNN's. k null: none.
struct ExtraKeys {
  const bf16* k = nullptr;
  const bf16* v = nullptr;
  int64_t batch_stride = 0, key_stride = 0;
  int count = 0, query_key_offset = 1;
  __device__ __forceinline__ int64_t Offset(int b, int g, int d) const {
    return b * batch_stride + int64_t{g} * d;
  }
  __device__ __forceinline__ bool Visible(int j, int i) const { return j <= i + query_key_offset; }
  __device__ __forceinline__ bool OnlyExtraKeys(int i) const { return i < count - query_key_offset; }
};

// Row r = (b S + i) H + h of q, out, dout, dq [B, S, H, d]: its query index, the offset of its
// vector, of its kv head's first extra key and value, and its lse index.
struct Row {
  int h, i;
  int64_t offset, key, lse;
};
__device__ __forceinline__ Row RowOf(const AttentionDims& dims, const ExtraKeys& keys, int64_t r) {
  Row row;
  row.h = static_cast<int>(r % dims.heads);
  const int64_t token = r / dims.heads;  // b * S + i
  const int b = static_cast<int>(token / dims.seq);
  row.i = static_cast<int>(token % dims.seq);
  row.offset = r * dims.d;
  row.key = keys.Offset(b, row.h / dims.group(), dims.d);
  row.lse = RowIndex(dims, b, row.h, row.i);
  return row;
}

// a . b of two kVec-element packets.
__device__ __forceinline__ float Dot8(const float (&a)[kVec], const float (&b)[kVec]) {
  float s = 0.0f;
#pragma unroll
  for (int m = 0; m < kVec; ++m) s += a[m] * b[m];
  return s;
}

// The row kernels: L = d / kVec lanes per row, a packet each (ForEachRowGroup); lanes of
// rows past the end compute on the last row and write nothing.
template <int L>
__global__ void FoldExtraKeysKernel(AttentionParams p, ExtraKeys bias, bf16* out, float* lse,
                                    const bf16* q) {
  const AttentionDims& dims = p.dims;
  const int64_t rows = int64_t{dims.batch} * dims.seq * dims.heads;
  const bool virtual_logit = p.norm.kind != AttentionNormalizer::kSoftmax;
  ForEachRowGroup<L>(rows, [&](int64_t r, int lane, bool active) {
    const Row row = RowOf(dims, bias, active ? r : rows - 1);
    const int col = lane * kVec;
    const float old_lse = lse[row.lse];
    float s_bias = -INFINITY, v_bias[kVec] = {};
    if (bias.k != nullptr) {
      float qv[kVec], kb[kVec];
      LoadVec(q + row.offset + col, qv);
      LoadVec(bias.k + row.key + col, kb);
      s_bias = p.norm.scale * GroupSum<L>(Dot8(qv, kb));
      LoadVec(bias.v + row.key + col, v_bias);
    }
    const float c = SinkLogitOf(p, row.h);
    const float m = fmaxf(fmaxf(old_lse, s_bias), virtual_logit ? c : -INFINITY);
    const float sum = expf(old_lse - m) + expf(s_bias - m) + (virtual_logit ? expf(c - m) : 0.0f);
    const float new_lse = m + logf(sum);
    const float factor = expf(old_lse - new_lse), w_bias = expf(s_bias - new_lse);
    float x[kVec];
    LoadVec(out + row.offset + col, x);
#pragma unroll
    for (int j = 0; j < kVec; ++j) x[j] = x[j] * factor + w_bias * v_bias[j];
    __syncwarp();  // every lane has read old_lse
    if (active) {
      StoreVec(out + row.offset + col, x);
      if (lane == 0) lse[row.lse] = new_lse;
    }
  });
}

// The extra keys' share of dq (written for the lead rows, else added), and p_ij, dS_ij per
// row and key j (at lse index * count + j; 0 where j is not visible) for ExtraKeyGradKernel.
template <int L>
__global__ void ExtraKeyRowsKernel(AttentionDims dims, float scale, ExtraKeys keys, bf16* dq,
                                   float* p_keys, float* ds_keys, const bf16* dout,
                                   const bf16* q, const bf16* out, const float* lse) {
  const int64_t rows = int64_t{dims.batch} * dims.seq * dims.heads;
  const int64_t key_stride = keys.key_stride;
  ForEachRowGroup<L>(rows, [&](int64_t r, int lane, bool active) {
    const Row row = RowOf(dims, keys, active ? r : rows - 1);
    const int col = lane * kVec;
    float qv[kVec], o[kVec], g[kVec], acc[kVec] = {};
    LoadVec(q + row.offset + col, qv);
    LoadVec(out + row.offset + col, o);
    LoadVec(dout + row.offset + col, g);
    const float d_row = GroupSum<L>(Dot8(g, o));  // D_i = dout_i . out_i
    const float row_lse = lse[row.lse];
    for (int j = 0; j < keys.count; ++j) {  // every lane of a row group takes each j
      float kj[kVec], vj[kVec];
      LoadVec(keys.k + row.key + j * key_stride + col, kj);
      LoadVec(keys.v + row.key + j * key_stride + col, vj);
      const float s = scale * GroupSum<L>(Dot8(qv, kj));
      const float g_v = GroupSum<L>(Dot8(g, vj));
      const float p = keys.Visible(j, row.i) ? expf(s - row_lse) : 0.0f;
      const float ds = p * (g_v - d_row);
#pragma unroll
      for (int m = 0; m < kVec; ++m) acc[m] += scale * ds * kj[m];
      if (active && lane == 0) {
        p_keys[row.lse * keys.count + j] = p;
        ds_keys[row.lse * keys.count + j] = ds;
      }
    }
    if (!active) return;
    float dqv[kVec] = {};
    if (!keys.OnlyExtraKeys(row.i)) LoadVec(dq + row.offset + col, dqv);
#pragma unroll
    for (int m = 0; m < kVec; ++m) dqv[m] += acc[m];
    StoreVec(dq + row.offset + col, dqv);
  });
}

// dk_j = scale sum dS_ij q_i and dv_j = sum p_ij dout_i over the rows of (b, kv head g), into
// dk_b, dv_b [B, count, Hkv, d] f32, kChunk keys per pass over the rows: thread t adds packet
// t % L of rows t / L, t / L + kBlock / L, ...; the kBlock / L slices are summed in order at
// the end.
template <int L>
__global__ void __launch_bounds__(kBlock)
    ExtraKeyGradKernel(AttentionDims dims, float scale, int count, float* dk_b, float* dv_b,
                       const float* p_keys, const float* ds_keys, const bf16* dout,
                       const bf16* q) {
  constexpr int kSlices = kBlock / L, kD = L * kVec, kChunk = 4;
  __shared__ float partial_k[kSlices][kD], partial_v[kSlices][kD];
  const int b = blockIdx.x / dims.kv_heads, g = blockIdx.x % dims.kv_heads;
  const int slice = threadIdx.x / L, col = (threadIdx.x % L) * kVec;
  const int group = dims.group(), rows = group * dims.seq;
  for (int j0 = 0; j0 < count; j0 += kChunk) {
    const int chunk = min(kChunk, count - j0);
    float acc_k[kChunk][kVec] = {}, acc_v[kChunk][kVec] = {};
    for (int r = slice; r < rows; r += kSlices) {
      const int h = g * group + r / dims.seq, i = r % dims.seq;
      const int64_t at = RowIndex(dims, b, h, i) * count + j0;
      const int64_t x = QueryHead(dims, b, h).offset + int64_t{i} * dims.heads * kD + col;
      float qv[kVec], gv[kVec];
      LoadVec(q + x, qv);
      LoadVec(dout + x, gv);
#pragma unroll
      for (int c = 0; c < kChunk; ++c) {
        if (c >= chunk) break;
        const float ds = ds_keys[at + c], p = p_keys[at + c];
#pragma unroll
        for (int m = 0; m < kVec; ++m) {
          acc_k[c][m] += ds * qv[m];
          acc_v[c][m] += p * gv[m];
        }
      }
    }
#pragma unroll
    for (int c = 0; c < kChunk; ++c) {
      if (c >= chunk) break;  // the same for the whole block
#pragma unroll
      for (int m = 0; m < kVec; ++m) {
        partial_k[slice][col + m] = acc_k[c][m];
        partial_v[slice][col + m] = acc_v[c][m];
      }
      __syncthreads();
      if (threadIdx.x < kD) {
        float sum_k = 0.0f, sum_v = 0.0f;
        for (int s = 0; s < kSlices; ++s) {
          sum_k += partial_k[s][threadIdx.x];
          sum_v += partial_v[s][threadIdx.x];
        }
        const int64_t at = ((int64_t{b} * count + j0 + c) * dims.kv_heads + g) * kD + threadIdx.x;
        dk_b[at] = scale * sum_k;
        dv_b[at] = sum_v;
      }
      __syncthreads();
    }
  }
}

// The extra keys' gradients of each b: rows 0 .. count - 1 of dk, dv [B, K, Hkv, d]
// overwritten (row_elems = count Hkv d of them per b).
__global__ void ExtraKeyRowsOutKernel(int64_t n, int64_t row_elems, int64_t batch_stride, bf16* dk,
                                      bf16* dv, const float* dk_b, const float* dv_b) {
  const int64_t j = int64_t{blockIdx.x} * blockDim.x + threadIdx.x;  // b * row_elems + ...
  if (j >= n) return;
  const int64_t at = j / row_elems * batch_stride + j % row_elems;
  dk[at] = FromF<bf16>(dk_b[j]);
  dv[at] = FromF<bf16>(dv_b[j]);
}

// The bias key apart: dk_bias, dv_bias [Hkv, d] f32 += sums over b, in order.
__global__ void BiasKeySumKernel(int batch, int64_t row_elems, float* dk_bias, float* dv_bias,
                                 const float* dk_b, const float* dv_b) {
  const int64_t j = int64_t{blockIdx.x} * blockDim.x + threadIdx.x;  // g d + c
  if (j >= row_elems) return;
  float sum_k = 0.0f, sum_v = 0.0f;
  for (int b = 0; b < batch; ++b) {
    sum_k += dk_b[b * row_elems + j];
    sum_v += dv_b[b * row_elems + j];
  }
  dk_bias[j] += sum_k;
  dv_bias[j] += sum_v;
}

// f(std::integral_constant<int, L>) with L = d / kVec lanes per row: d = 64 or 128.
template <typename F>
void DispatchRowLanes(int d, const char* what, F&& f) {
  if (d == 64) {
    f(std::integral_constant<int, 8>{});
  } else if (d == 128) {
    f(std::integral_constant<int, 16>{});
  } else {
    SL_CHECK_MSG(false, absl::StrCat(what, ": head dim ", d, ", expected 64 or 128"));
  }
}

void CheckBf16(std::initializer_list<const Tensor*> tensors, const char* what) {
  for (const Tensor* t : tensors) {
    CheckCuda(*t, what);
    SL_CHECK_MSG(t->dtype() == DType::kBF16,
                 absl::StrCat(what, ": expected bf16, got ", DTypeName(t->dtype())));
  }
}

size_t AlignUp256(size_t bytes) { return (bytes + 255) / 256 * 256; }

// The bias keys of k, v (row 0 when K = S + 1) or of k_bias, v_bias [Hkv, d] (then K = S).
ExtraKeys BiasKeysOf(const AttentionDims& dims, const Tensor& k, const Tensor& v,
                     const Tensor& k_bias, const Tensor& v_bias, const char* what) {
  const int64_t row_elems = int64_t{dims.kv_heads} * dims.d;
  if (k_bias.empty()) {
    SL_CHECK_MSG(v_bias.empty() && dims.bias_keys() <= 1,
                 absl::StrCat(what, ": at most one bias key, got K - S = ", dims.bias_keys()));
    if (dims.bias_keys() == 0) return ExtraKeys{};
    return ExtraKeys{Ptr<bf16>(k), Ptr<bf16>(v), dims.keys * row_elems, row_elems, 1, 1};
  }
  CheckBf16({&k_bias, &v_bias}, what);
  SL_CHECK_MSG(dims.bias_keys() == 0 && k_bias.numel() == row_elems &&
                   v_bias.numel() == row_elems && AllAligned16(k_bias, v_bias),
               absl::StrCat(what, ": the bias key apart needs K = S and aligned [Hkv, d] k_bias, ",
                            "v_bias; got K - S = ", dims.bias_keys(), ", ", k_bias.ShapeString(),
                            ", ", v_bias.ShapeString()));
  return ExtraKeys{Ptr<bf16>(k_bias), Ptr<bf16>(v_bias), 0, row_elems, 1, 1};
}

// Scratch bytes of ExtraKeysBackward: p and dS per row and key, dk_b and dv_b.
size_t ExtraKeysScratchBytes(const Tensor& q, const Tensor& k, int count) {
  const size_t rows = static_cast<size_t>(q.dim(0) * q.dim(1) * q.dim(2)) * count;
  const size_t keys = static_cast<size_t>(q.dim(0) * k.dim(2) * k.dim(3)) * count;  // B n Hkv d
  return 2 * AlignUp256(rows * sizeof(float)) + 2 * AlignUp256(keys * sizeof(float));
}

// The extra keys' share of the backward (checked by the callers): dq; then, apart, dk_bias and
// dv_bias += the sums over b, else rows 0 .. count - 1 of dk, dv overwritten.
void ExtraKeysBackward(cudaStream_t stream, void* scratch, const AttentionDims& dims,
                       const ExtraKeys& keys, const Tensor& dq, const Tensor& dk, const Tensor& dv,
                       const Tensor& dk_bias, const Tensor& dv_bias, const Tensor& dout,
                       const Tensor& q, const Tensor& out, const Tensor& lse, float scale) {
  const int64_t rows = int64_t{dims.batch} * dims.seq * dims.heads;
  if (rows == 0) return;
  const int64_t key_elems = keys.count * keys.key_stride;  // a batch row's extra keys
  float* p_keys = static_cast<float*>(scratch);
  float* ds_keys = p_keys + AlignUp256(rows * keys.count * sizeof(float)) / sizeof(float);
  float* dk_b = ds_keys + AlignUp256(rows * keys.count * sizeof(float)) / sizeof(float);
  const int64_t per_b = dims.batch * key_elems;
  float* dv_b = dk_b + AlignUp256(per_b * sizeof(float)) / sizeof(float);
  DispatchRowLanes(dims.d, "ExtraKeysBackward", [&](auto lanes) {
    constexpr int L = decltype(lanes)::value;
    ExtraKeyRowsKernel<L><<<GridFor(rows * L), kBlock, 0, stream>>>(
        dims, scale, keys, Ptr<bf16>(dq), p_keys, ds_keys, Ptr<bf16>(dout), Ptr<bf16>(q),
        Ptr<bf16>(out), lse.f32());
    SL_CUDA_LAUNCH_CHECK();
    ExtraKeyGradKernel<L><<<dims.batch * dims.kv_heads, kBlock, 0, stream>>>(
        dims, scale, keys.count, dk_b, dv_b, p_keys, ds_keys, Ptr<bf16>(dout), Ptr<bf16>(q));
    SL_CUDA_LAUNCH_CHECK();
  });
  if (!dk_bias.empty()) {
    BiasKeySumKernel<<<GridFor(key_elems), kBlock, 0, stream>>>(
        dims.batch, key_elems, dk_bias.f32(), dv_bias.f32(), dk_b, dv_b);
  } else {
    ExtraKeyRowsOutKernel<<<GridFor(per_b), kBlock, 0, stream>>>(
        per_b, key_elems, keys.batch_stride, Ptr<bf16>(dk), Ptr<bf16>(dv), dk_b, dv_b);
  }
  SL_CUDA_LAUNCH_CHECK();
}

}  // namespace

void LaunchFoldExtraKeys(cudaStream_t stream, const Tensor& out, const Tensor& lse, const Tensor& q,
                         const Tensor& k, const Tensor& v, const Tensor& k_bias,
                         const Tensor& v_bias, const Tensor& sink_logit,
                         const AttentionSpec& spec) {
  const AttentionDims dims =
      CheckAttentionShapes("FoldExtraKeys", out, lse, q, k, v, sink_logit, spec);
  CheckBf16({&out, &q, &k, &v}, "FoldExtraKeys");
  SL_CHECK_MSG(AllAligned16(out, q, k, v), "FoldExtraKeys: needs 16-byte aligned out, q, k, v");
  const ExtraKeys bias = BiasKeysOf(dims, k, v, k_bias, v_bias, "FoldExtraKeys");
  const int64_t rows = int64_t{dims.batch} * dims.seq * dims.heads;
  if (rows == 0) return;
  DispatchRowLanes(dims.d, "FoldExtraKeys", [&](auto lanes) {
    constexpr int L = decltype(lanes)::value;
    FoldExtraKeysKernel<L><<<GridFor(rows * L), kBlock, 0, stream>>>(
        ParamsOf(dims, spec, sink_logit), bias, Ptr<bf16>(out), lse.f32(), Ptr<bf16>(q));
  });
  SL_CUDA_LAUNCH_CHECK();
}

size_t BiasKeyBackwardScratchBytes(const Tensor& q, const Tensor& k) {
  return ExtraKeysScratchBytes(q, k, 1);
}

void LaunchBiasKeyBackward(cudaStream_t stream, void* scratch, const Tensor& dq, const Tensor& dk,
                           const Tensor& dv, const Tensor& dk_bias, const Tensor& dv_bias,
                           const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v,
                           const Tensor& k_bias, const Tensor& v_bias, const Tensor& out,
                           const Tensor& lse, float scale) {
  CheckBf16({&dq, &dout, &q, &k, &v, &out}, "BiasKeyBackward");
  const AttentionDims dims = DimsOf(q, k);
  const ExtraKeys bias = BiasKeysOf(dims, k, v, k_bias, v_bias, "BiasKeyBackward");
  const int64_t key_elems = int64_t{dims.kv_heads} * dims.d;  // one bias key row
  SL_CHECK_MSG(bias.k != nullptr && dq.numel() == q.numel() && AllAligned16(dq, dout, q, out),
               absl::StrCat("BiasKeyBackward: q ", q.ShapeString(), " k ", k.ShapeString(), " dq ",
                            dq.ShapeString(), " (needs a bias key and aligned tensors)"));
  if (!k_bias.empty()) {
    for (const Tensor* g : {&dk_bias, &dv_bias}) {
      CheckCuda(*g, "BiasKeyBackward");
      SL_CHECK_MSG(g->dtype() == DType::kF32 && g->numel() == key_elems,
                   absl::StrCat("BiasKeyBackward: dk_bias, dv_bias must be [Hkv, d] f32, got ",
                                g->ShapeString()));
    }
  } else {
    CheckBf16({&dk, &dv}, "BiasKeyBackward");
    SL_CHECK_MSG(dk.numel() == k.numel() && dv.numel() == k.numel(),
                 absl::StrCat("BiasKeyBackward: dk ", dk.ShapeString(), " dv ", dv.ShapeString(),
                              " vs k ", k.ShapeString()));
  }
  ExtraKeysBackward(stream, scratch, dims, bias, dq, dk, dv, dk_bias, dv_bias, dout, q, out, lse,
                    scale);
}

size_t LeadRowsBackwardScratchBytes(const Tensor& q, const Tensor& k, int lead) {
  return ExtraKeysScratchBytes(q, k, lead);
}

void LaunchLeadRowsBackward(cudaStream_t stream, void* scratch, int lead, const Tensor& dq,
                            const Tensor& dk, const Tensor& dv, const Tensor& dout,
                            const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                            const Tensor& lse, float scale) {
  CheckBf16({&dq, &dk, &dv, &dout, &q, &k, &v, &out}, "LeadRowsBackward");
  const AttentionDims dims = DimsOf(q, k);
  SL_CHECK_MSG(dims.bias_keys() == 0 && lead >= 1 && lead <= kMaxLeadRows && lead <= dims.seq &&
                   dq.numel() == q.numel() && dk.numel() == k.numel() &&
                   dv.numel() == v.numel() && dout.numel() == q.numel() &&
                   AllAligned16(dq, dout, q, out) && AllAligned16(dk, dv, k, v),
               absl::StrCat("LeadRowsBackward: ", lead, " lead rows (1 to ", kMaxLeadRows,
                            ") of q ", q.ShapeString(), " k ", k.ShapeString(), " dq ",
                            dq.ShapeString(), " dk ", dk.ShapeString(),
                            " (needs K = S and aligned tensors)"));
  const int64_t row_elems = int64_t{dims.kv_heads} * dims.d;
  const ExtraKeys keys{Ptr<bf16>(k), Ptr<bf16>(v), dims.keys * row_elems, row_elems, lead, 0};
  ExtraKeysBackward(stream, scratch, dims, keys, dq, dk, dv, Tensor(), Tensor(), dout, q, out, lse,
                    scale);
}

}  // namespace cuda
}  // namespace sinklab

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

// Where the bias key and value of (b, kv head g) are: k + b * batch_stride + g * d (and the
// same in v). Row 0 of k, v [B, S + 1, Hkv, d] (batch_stride (S + 1) Hkv d), or one [Hkv, d]
// pair for every b (batch_stride 0). k null: no bias key.
struct BiasKeys {
  const bf16* k = nullptr;
  const bf16* v = nullptr;
  int64_t batch_stride = 0;
  __device__ __forceinline__ int64_t Offset(int b, int g, int d) const {
    return b * batch_stride + int64_t{g} * d;
  }
};

// Row r = (b S + i) H + h of q, out, dout, dq [B, S, H, d]: the offset of its vector, of its
// kv head's bias key and value, and its lse index.
struct Row {
  int h;
  int64_t offset, bias_key, lse;
};
__device__ __forceinline__ Row RowOf(const AttentionDims& dims, const BiasKeys& bias, int64_t r) {
  Row row;
  row.h = static_cast<int>(r % dims.heads);
  const int64_t token = r / dims.heads;  // b * S + i
  const int b = static_cast<int>(token / dims.seq), i = static_cast<int>(token % dims.seq);
  row.offset = r * dims.d;
  row.bias_key = bias.Offset(b, row.h / dims.group(), dims.d);
  row.lse = RowIndex(dims, b, row.h, i);
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
__global__ void FoldExtraKeysKernel(AttentionParams p, BiasKeys bias, bf16* out, float* lse,
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
      LoadVec(bias.k + row.bias_key + col, kb);
      s_bias = p.norm.scale * GroupSum<L>(Dot8(qv, kb));
      LoadVec(bias.v + row.bias_key + col, v_bias);
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

// dq of the bias key, and p'_i, dS'_i per row (at its lse index) for BiasKeyGradKernel.
template <int L>
__global__ void BiasKeyRowsKernel(AttentionDims dims, float scale, BiasKeys bias, bf16* dq,
                                  float* p_bias, float* ds_bias, const bf16* dout, const bf16* q,
                                  const bf16* out, const float* lse) {
  const int64_t rows = int64_t{dims.batch} * dims.seq * dims.heads;
  ForEachRowGroup<L>(rows, [&](int64_t r, int lane, bool active) {
    const Row row = RowOf(dims, bias, active ? r : rows - 1);
    const int col = lane * kVec;
    float qv[kVec], kb[kVec], vb[kVec], o[kVec], g[kVec];
    LoadVec(q + row.offset + col, qv);
    LoadVec(bias.k + row.bias_key + col, kb);
    LoadVec(bias.v + row.bias_key + col, vb);
    LoadVec(out + row.offset + col, o);
    LoadVec(dout + row.offset + col, g);
    const float s_bias = scale * GroupSum<L>(Dot8(qv, kb));
    const float d_row = GroupSum<L>(Dot8(g, o));  // D_i = dout_i . out_i
    const float g_v = GroupSum<L>(Dot8(g, vb));
    const float p = expf(s_bias - lse[row.lse]);
    const float ds = p * (g_v - d_row);
    if (!active) return;
    float dqv[kVec];
    LoadVec(dq + row.offset + col, dqv);
#pragma unroll
    for (int j = 0; j < kVec; ++j) dqv[j] += scale * ds * kb[j];
    StoreVec(dq + row.offset + col, dqv);
    if (lane == 0) {
      p_bias[row.lse] = p;
      ds_bias[row.lse] = ds;
    }
  });
}

// dk' = scale sum dS'_i q_i and dv' = sum p'_i dout_i over the rows of (b, kv head g), into
// dk_b, dv_b [B, Hkv, d] f32: thread t adds packet t % L of rows t / L, t / L + kBlock / L,
// ...; the kBlock / L slices are summed in order at the end.
template <int L>
__global__ void __launch_bounds__(kBlock)
    BiasKeyGradKernel(AttentionDims dims, float scale, float* dk_b, float* dv_b,
                      const float* p_bias, const float* ds_bias, const bf16* dout, const bf16* q) {
  constexpr int kSlices = kBlock / L, kD = L * kVec;
  __shared__ float partial_k[kSlices][kD], partial_v[kSlices][kD];
  const int b = blockIdx.x / dims.kv_heads, g = blockIdx.x % dims.kv_heads;
  const int slice = threadIdx.x / L, col = (threadIdx.x % L) * kVec;
  const int group = dims.group(), rows = group * dims.seq;
  float acc_k[kVec] = {}, acc_v[kVec] = {};
  for (int r = slice; r < rows; r += kSlices) {
    const int h = g * group + r / dims.seq, i = r % dims.seq;
    const int64_t at = RowIndex(dims, b, h, i);
    const int64_t x = QueryHead(dims, b, h).offset + int64_t{i} * dims.heads * kD + col;
    float qv[kVec], gv[kVec];
    LoadVec(q + x, qv);
    LoadVec(dout + x, gv);
    const float ds = ds_bias[at], p = p_bias[at];
#pragma unroll
    for (int j = 0; j < kVec; ++j) {
      acc_k[j] += ds * qv[j];
      acc_v[j] += p * gv[j];
    }
  }
#pragma unroll
  for (int j = 0; j < kVec; ++j) {
    partial_k[slice][col + j] = acc_k[j];
    partial_v[slice][col + j] = acc_v[j];
  }
  __syncthreads();
  if (threadIdx.x >= kD) return;
  float sum_k = 0.0f, sum_v = 0.0f;
  for (int s = 0; s < kSlices; ++s) {
    sum_k += partial_k[s][threadIdx.x];
    sum_v += partial_v[s][threadIdx.x];
  }
  const int64_t at = (int64_t{b} * dims.kv_heads + g) * kD + threadIdx.x;
  dk_b[at] = scale * sum_k;
  dv_b[at] = sum_v;
}

// The bias key's gradients of each b: rows 0 of dk, dv [B, S + 1, Hkv, d] overwritten.
__global__ void BiasKeyRowsOutKernel(int64_t n, int64_t row_elems, int64_t batch_stride, bf16* dk,
                                     bf16* dv, const float* dk_b, const float* dv_b) {
  const int64_t j = int64_t{blockIdx.x} * blockDim.x + threadIdx.x;  // b * Hkv d + g d + c
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
BiasKeys BiasKeysOf(const AttentionDims& dims, const Tensor& k, const Tensor& v,
                    const Tensor& k_bias, const Tensor& v_bias, const char* what) {
  if (k_bias.empty()) {
    SL_CHECK_MSG(v_bias.empty() && dims.bias_keys() <= 1,
                 absl::StrCat(what, ": at most one bias key, got K - S = ", dims.bias_keys()));
    if (dims.bias_keys() == 0) return BiasKeys{};
    return BiasKeys{Ptr<bf16>(k), Ptr<bf16>(v), int64_t{dims.keys} * dims.kv_heads * dims.d};
  }
  CheckBf16({&k_bias, &v_bias}, what);
  const int64_t want = int64_t{dims.kv_heads} * dims.d;
  SL_CHECK_MSG(dims.bias_keys() == 0 && k_bias.numel() == want && v_bias.numel() == want &&
                   AllAligned16(k_bias, v_bias),
               absl::StrCat(what, ": the bias key apart needs K = S and aligned [Hkv, d] k_bias, ",
                            "v_bias; got K - S = ", dims.bias_keys(), ", ", k_bias.ShapeString(),
                            ", ", v_bias.ShapeString()));
  return BiasKeys{Ptr<bf16>(k_bias), Ptr<bf16>(v_bias), 0};
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
  const BiasKeys bias = BiasKeysOf(dims, k, v, k_bias, v_bias, "FoldExtraKeys");
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
  const size_t rows = static_cast<size_t>(q.dim(0) * q.dim(1) * q.dim(2));
  const size_t keys = static_cast<size_t>(q.dim(0) * k.dim(2) * k.dim(3));  // B Hkv d
  return 2 * AlignUp256(rows * sizeof(float)) + 2 * AlignUp256(keys * sizeof(float));
}

void LaunchBiasKeyBackward(cudaStream_t stream, void* scratch, const Tensor& dq, const Tensor& dk,
                           const Tensor& dv, const Tensor& dk_bias, const Tensor& dv_bias,
                           const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v,
                           const Tensor& k_bias, const Tensor& v_bias, const Tensor& out,
                           const Tensor& lse, float scale) {
  CheckBf16({&dq, &dout, &q, &k, &v, &out}, "BiasKeyBackward");
  const AttentionDims dims = DimsOf(q, k);
  const BiasKeys bias = BiasKeysOf(dims, k, v, k_bias, v_bias, "BiasKeyBackward");
  const bool apart = !k_bias.empty();
  const int64_t key_elems = int64_t{dims.kv_heads} * dims.d;  // one bias key row
  SL_CHECK_MSG(bias.k != nullptr && dq.numel() == q.numel() && AllAligned16(dq, dout, q, out),
               absl::StrCat("BiasKeyBackward: q ", q.ShapeString(), " k ", k.ShapeString(), " dq ",
                            dq.ShapeString(), " (needs a bias key and aligned tensors)"));
  if (apart) {
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
  const int64_t rows = int64_t{dims.batch} * dims.seq * dims.heads;
  if (rows == 0) return;
  float* p_bias = static_cast<float*>(scratch);
  float* ds_bias = p_bias + AlignUp256(rows * sizeof(float)) / sizeof(float);
  float* dk_b = ds_bias + AlignUp256(rows * sizeof(float)) / sizeof(float);
  const int64_t per_b = dims.batch * key_elems;
  float* dv_b = dk_b + AlignUp256(per_b * sizeof(float)) / sizeof(float);
  DispatchRowLanes(dims.d, "BiasKeyBackward", [&](auto lanes) {
    constexpr int L = decltype(lanes)::value;
    BiasKeyRowsKernel<L><<<GridFor(rows * L), kBlock, 0, stream>>>(
        dims, scale, bias, Ptr<bf16>(dq), p_bias, ds_bias, Ptr<bf16>(dout), Ptr<bf16>(q),
        Ptr<bf16>(out), lse.f32());
    SL_CUDA_LAUNCH_CHECK();
    BiasKeyGradKernel<L><<<dims.batch * dims.kv_heads, kBlock, 0, stream>>>(
        dims, scale, dk_b, dv_b, p_bias, ds_bias, Ptr<bf16>(dout), Ptr<bf16>(q));
    SL_CUDA_LAUNCH_CHECK();
  });
  if (apart) {
    BiasKeySumKernel<<<GridFor(key_elems), kBlock, 0, stream>>>(
        dims.batch, key_elems, dk_bias.f32(), dv_bias.f32(), dk_b, dv_b);
  } else {
    BiasKeyRowsOutKernel<<<GridFor(per_b), kBlock, 0, stream>>>(
        per_b, key_elems, bias.batch_stride, Ptr<bf16>(dk), Ptr<bf16>(dv), dk_b, dv_b);
  }
  SL_CUDA_LAUNCH_CHECK();
}

}  // namespace cuda
}  // namespace sinklab

// The extra keys folded around cuDNN's softmax attention (attention_extra_keys.h): the
// forward fold, d / 8 lanes per row (b, i, h) with a 16-byte packet each; the backward of the
// bias key or the lead rows, the same lanes per row in blocks of a chunk of one (b, kv head)'s
// rows (dq, and the chunk's sums for dk and dv), then the sums over the chunks. Rows must be
// 16-byte aligned (d = 64 or 128, aligned tensors: what the cuDNN path requires anyway).
#include "layers/cuda/attention_common.cuh"
#include "layers/cuda/attention_extra_keys.h"
#include "layers/cuda/cuda_backend.h"

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
  // The first queries, whose rows cuDNN did not run (the lead rows).
  __device__ __forceinline__ int LeadRows() const { return max(count - query_key_offset, 0); }
};

// Row r = (b S + i) H + h of q and out [B, S, H, d] (the forward fold): the offset of its
// vector, of its kv head's first extra key and value, and its lse index.
struct Row {
  int h;
  int64_t offset, key, lse;
};
__device__ __forceinline__ Row RowOf(const AttentionDims& dims, const ExtraKeys& keys, int64_t r) {
  Row row;
  row.h = static_cast<int>(r % dims.heads);
  const int64_t token = r / dims.heads;  // b * S + i
  const int b = static_cast<int>(token / dims.seq), i = static_cast<int>(token % dims.seq);
  row.offset = r * dims.d;
  row.key = keys.Offset(b, row.h / dims.group(), dims.d);
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

// The backward's blocks: kChunkRows rows of one (b, kv head g) (its query heads' rows, head
// by head) each, up to kKeysPerPass extra keys per launch (keys j0 ..).
constexpr int kChunkRows = 256, kKeysPerPass = 4;

// One pass of the extra keys' backward over a chunk of rows of (b, g), N keys (n <= N of them
// real): each row's dq share (written for the lead rows on the first pass, else added), and
// the chunk's sums of dS_ij q_i and p_ij dout_i into part_k, part_v [chunks, B, count, Hkv,
// d] f32. D_i from cuDNN's softmax_sum [B, H, S - lead] where given (cudnn_d), else dout_i .
// out_i. Thread t takes packet t % L of rows t / L, t / L + kBlock / L, ... of the chunk
// (every warp the same number of rows: lanes past the end compute on the last row and write
// nothing); the kBlock / L slices are summed in order at the end. The keys sit in shared
// memory; a row's loads are all issued before its first use (the kernel is latency-bound).
template <int L, int N>
__global__ void __launch_bounds__(kBlock)
    ExtraKeysBackwardKernel(AttentionDims dims, float scale, ExtraKeys keys, int j0, int n,
                            bf16* dq, float* part_k, float* part_v, const bf16* dout, const bf16* q,
                            const bf16* out, const float* lse, const float* cudnn_d) {
  constexpr int kSlices = kBlock / L, kD = L * kVec;
  __shared__ float partial_k[kSlices][kD], partial_v[kSlices][kD];
  __shared__ __align__(16) float key_s[N][kD], value_s[N][kD];
  const int bg = blockIdx.y, b = bg / dims.kv_heads, g = bg % dims.kv_heads;
  const int slice = threadIdx.x / L, col = (threadIdx.x % L) * kVec;
  const int group = dims.group(), rows = group * dims.seq, lead = keys.LeadRows();
  const int first = blockIdx.x * kChunkRows, end = min(rows, first + kChunkRows);
  const int64_t key0 = keys.Offset(b, g, dims.d) + j0 * keys.key_stride;
  for (int t = threadIdx.x; t < N * kD; t += kBlock) {
    const int c = t / kD;
    const int64_t at = key0 + min(c, n - 1) * keys.key_stride + t % kD;
    key_s[c][t % kD] = ToF(keys.k[at]);
    value_s[c][t % kD] = ToF(keys.v[at]);
  }
  __syncthreads();
  float acc_k[N][kVec] = {}, acc_v[N][kVec] = {};
  for (int base = first; base < end; base += kSlices) {
    const bool active = base + slice < end;
    const int r = active ? base + slice : end - 1;
    const int h = g * group + r / dims.seq, i = r % dims.seq;
    const int64_t x = QueryHead(dims, b, h).offset + int64_t{i} * dims.heads * kD + col;
    const int64_t at = RowIndex(dims, b, h, i);
    const bool adds = j0 > 0 || i >= lead, own_d = cudnn_d == nullptr || i < lead;
    float qv[kVec], gv[kVec], o[kVec] = {}, dqv[kVec] = {};
    LoadVec(q + x, qv);
    LoadVec(dout + x, gv);
    if (own_d) LoadVec(out + x, o);
    if (adds && active) LoadVec(dq + x, dqv);
    const float row_lse = lse[at];
    const float given_d =
        own_d ? 0.0f : cudnn_d[(int64_t{b} * dims.heads + h) * (dims.seq - lead) + (i - lead)];
    const float own = GroupSum<L>(Dot8(gv, o));  // every lane: the shuffles take the warp
    const float d_row = own_d ? own : given_d;   // D_i = dout_i . out_i
#pragma unroll
    for (int c = 0; c < N; ++c) {
      float kj[kVec], vj[kVec];
#pragma unroll
      for (int m = 0; m < kVec; ++m) {
        kj[m] = key_s[c][col + m];
        vj[m] = value_s[c][col + m];
      }
      const float s = scale * GroupSum<L>(Dot8(qv, kj));
      const float g_v = GroupSum<L>(Dot8(gv, vj));
      const float p = active && c < n && keys.Visible(j0 + c, i) ? expf(s - row_lse) : 0.0f;
      const float ds = p * (g_v - d_row);
#pragma unroll
      for (int m = 0; m < kVec; ++m) {
        dqv[m] += scale * ds * kj[m];
        acc_k[c][m] += ds * qv[m];
        acc_v[c][m] += p * gv[m];
      }
    }
    if (active) StoreVec(dq + x, dqv);
  }
#pragma unroll
  for (int c = 0; c < N; ++c) {
    if (c >= n) break;  // the same for the whole block
#pragma unroll
    for (int m = 0; m < kVec; ++m) {
      partial_k[slice][col + m] = acc_k[c][m];
      partial_v[slice][col + m] = acc_v[c][m];
    }
    __syncthreads();
    if (threadIdx.x < kD) {
      float sum_k = 0.0f, sum_v = 0.0f;
      for (int t = 0; t < kSlices; ++t) {
        sum_k += partial_k[t][threadIdx.x];
        sum_v += partial_v[t][threadIdx.x];
      }
      const int64_t at =
          ((int64_t{blockIdx.x} * dims.batch + b) * keys.count + j0 + c) * dims.kv_heads * kD +
          int64_t{g} * kD + threadIdx.x;
      part_k[at] = sum_k;
      part_v[at] = sum_v;
    }
    __syncthreads();
  }
}

// The extra keys' gradients of each b, summed over the chunks in order: rows 0 .. count - 1
// of dk, dv [B, K, Hkv, d] overwritten (row_elems = count Hkv d of them per b).
__global__ void ExtraKeyRowsOutKernel(int64_t n, int chunks, int64_t row_elems,
                                      int64_t batch_stride, float scale, bf16* dk, bf16* dv,
                                      const float* part_k, const float* part_v) {
  const int64_t j = int64_t{blockIdx.x} * blockDim.x + threadIdx.x;  // b * row_elems + ...
  if (j >= n) return;
  float sum_k = 0.0f, sum_v = 0.0f;
  for (int c = 0; c < chunks; ++c) {
    sum_k += part_k[c * n + j];
    sum_v += part_v[c * n + j];
  }
  const int64_t at = j / row_elems * batch_stride + j % row_elems;
  dk[at] = FromF<bf16>(scale * sum_k);
  dv[at] = FromF<bf16>(sum_v);
}

// The bias key apart: dk_bias, dv_bias [Hkv, d] f32 += the sums over b and the chunks, in
// order.
__global__ void BiasKeySumKernel(int batch, int chunks, int64_t row_elems, float scale,
                                 float* dk_bias, float* dv_bias, const float* part_k,
                                 const float* part_v) {
  const int64_t j = int64_t{blockIdx.x} * blockDim.x + threadIdx.x;  // g d + c
  if (j >= row_elems) return;
  float sum_k = 0.0f, sum_v = 0.0f;
  for (int b = 0; b < batch; ++b) {
    for (int c = 0; c < chunks; ++c) {
      const int64_t at = (int64_t{c} * batch + b) * row_elems + j;
      sum_k += part_k[at];
      sum_v += part_v[at];
    }
  }
  dk_bias[j] += scale * sum_k;
  dv_bias[j] += sum_v;
}

void CheckBf16(std::initializer_list<const Tensor*> tensors, const char* what) {
  for (const Tensor* t : tensors) {
    CheckCuda(*t, what);
    SL_CHECK_MSG(t->dtype() == DType::kBF16,
                 absl::StrCat(what, ": expected bf16, got ", DTypeName(t->dtype())));
  }
}

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

// Row chunks of ExtraKeysBackwardKernel per (b, kv head).
int ChunksOf(const AttentionDims& dims) {
  return (dims.group() * dims.seq + kChunkRows - 1) / kChunkRows;
}

// Scratch bytes of ExtraKeysBackward: part_k and part_v [chunks, B, count, Hkv, d] f32.
size_t ExtraKeysScratchBytes(const Tensor& q, const Tensor& k, int count) {
  const AttentionDims dims = DimsOf(q, k);
  const size_t elems =
      static_cast<size_t>(ChunksOf(dims)) * dims.batch * count * dims.kv_heads * dims.d;
  return 2 * AlignUp256(elems * sizeof(float));
}

// The extra keys' share of the backward (checked by the callers): dq; then, apart, dk_bias and
// dv_bias += the sums over b, else rows 0 .. count - 1 of dk, dv overwritten.
void ExtraKeysBackward(cudaStream_t stream, void* scratch, const AttentionDims& dims,
                       const ExtraKeys& keys, const Tensor& dq, const Tensor& dk, const Tensor& dv,
                       const Tensor& dk_bias, const Tensor& dv_bias, const Tensor& dout,
                       const Tensor& q, const Tensor& out, const Tensor& lse, const float* cudnn_d,
                       float scale) {
  if (int64_t{dims.batch} * dims.seq * dims.heads == 0) return;
  const int chunks = ChunksOf(dims);
  const int64_t row_elems = keys.count * keys.key_stride;  // a batch row's extra keys
  const int64_t per_chunk = dims.batch * row_elems;
  float* part_k = static_cast<float*>(scratch);
  float* part_v = part_k + AlignUp256(chunks * per_chunk * sizeof(float)) / sizeof(float);
  DispatchHeadLanes(dims.d, "ExtraKeysBackward", [&](auto lanes) {
    constexpr int L = decltype(lanes)::value;
    const dim3 grid(chunks, dims.batch * dims.kv_heads);
    for (int j0 = 0; j0 < keys.count; j0 += kKeysPerPass) {
      const int n = std::min(kKeysPerPass, keys.count - j0);
      const auto launch = [&](auto kernel) {
        kernel<<<grid, kBlock, 0, stream>>>(dims, scale, keys, j0, n, Ptr<bf16>(dq), part_k, part_v,
                                            Ptr<bf16>(dout), Ptr<bf16>(q), Ptr<bf16>(out),
                                            lse.f32(), cudnn_d);
        SL_CUDA_LAUNCH_CHECK();
      };
      if (n == 1) {
        launch(ExtraKeysBackwardKernel<L, 1>);
      } else if (n == 2) {
        launch(ExtraKeysBackwardKernel<L, 2>);
      } else {
        launch(ExtraKeysBackwardKernel<L, kKeysPerPass>);
      }
    }
  });
  if (!dk_bias.empty()) {
    BiasKeySumKernel<<<GridFor(row_elems), kBlock, 0, stream>>>(
        dims.batch, chunks, row_elems, scale, dk_bias.f32(), dv_bias.f32(), part_k, part_v);
  } else {
    ExtraKeyRowsOutKernel<<<GridFor(per_chunk), kBlock, 0, stream>>>(
        per_chunk, chunks, row_elems, keys.batch_stride, scale, Ptr<bf16>(dk), Ptr<bf16>(dv),
        part_k, part_v);
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
  DispatchHeadLanes(dims.d, "FoldExtraKeys", [&](auto lanes) {
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
                           const Tensor& lse, const float* cudnn_d, float scale) {
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
                    cudnn_d, scale);
}

size_t LeadRowsBackwardScratchBytes(const Tensor& q, const Tensor& k, int lead) {
  return ExtraKeysScratchBytes(q, k, lead);
}

void LaunchLeadRowsBackward(cudaStream_t stream, void* scratch, int lead, const Tensor& dq,
                            const Tensor& dk, const Tensor& dv, const Tensor& dout, const Tensor& q,
                            const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& lse,
                            const float* cudnn_d, float scale) {
  CheckBf16({&dq, &dk, &dv, &dout, &q, &k, &v, &out}, "LeadRowsBackward");
  const AttentionDims dims = DimsOf(q, k);
  SL_CHECK_MSG(
      dims.bias_keys() == 0 && lead >= 1 && lead <= kMaxLeadRows && lead <= dims.seq &&
          dq.numel() == q.numel() && dk.numel() == k.numel() && dv.numel() == v.numel() &&
          dout.numel() == q.numel() && AllAligned16(dq, dout, q, out) && AllAligned16(dk, dv, k, v),
      absl::StrCat("LeadRowsBackward: ", lead, " lead rows (1 to ", kMaxLeadRows, ") of q ",
                   q.ShapeString(), " k ", k.ShapeString(), " dq ", dq.ShapeString(), " dk ",
                   dk.ShapeString(), " (needs K = S and aligned tensors)"));
  const int64_t row_elems = int64_t{dims.kv_heads} * dims.d;
  const ExtraKeys keys{Ptr<bf16>(k), Ptr<bf16>(v), dims.keys * row_elems, row_elems, lead, 0};
  ExtraKeysBackward(stream, scratch, dims, keys, dq, dk, dv, Tensor(), Tensor(), dout, q, out, lse,
                    cudnn_d, scale);
}

}  // namespace cuda
}  // namespace sinklab

// The extra keys folded around cuDNN's softmax attention (attention_extra_keys.h): the
// forward fold, a warp per row (b, i, h); the bias key's backward, a warp per row for dq and
// the per-row p' and dS', then a block per (b, kv head) for dk' and dv'.
#include "layers/cuda/attention_common.cuh"
#include "layers/cuda/attention_extra_keys.h"

namespace sinklab {
namespace cuda {
namespace {

constexpr int kRowsPerBlock = kBlock / 32;  // a warp per row

AttentionDims DimsOf(const Tensor& q, const Tensor& k) {
  return AttentionDims{static_cast<int>(q.dim(0)), static_cast<int>(q.dim(1)),
                       static_cast<int>(k.dim(1)), static_cast<int>(q.dim(2)),
                       static_cast<int>(k.dim(2)), static_cast<int>(q.dim(3))};
}

// a . b over d elements, summed across the warp (every lane gets it).
__device__ __forceinline__ float WarpDot(const bf16* a, const bf16* b, int d) {
  float s = 0.0f;
  for (int c = threadIdx.x & 31; c < d; c += 32) s += ToF(a[c]) * ToF(b[c]);
  return WarpSum(s);
}

// The row (b, i, h) of this warp and the offset of its [d] vector in q, out, dout, dq; false
// past the last row (warp-uniform).
struct Row {
  int b, i, h;
  int64_t offset;
};
__device__ __forceinline__ bool WarpRow(const AttentionDims& dims, Row* row) {
  const int64_t r = (int64_t{blockIdx.x} * blockDim.x + threadIdx.x) >> 5;
  if (r >= int64_t{dims.batch} * dims.seq * dims.heads) return false;
  row->h = static_cast<int>(r % dims.heads);
  const int64_t token = r / dims.heads;  // b * S + i
  row->b = static_cast<int>(token / dims.seq);
  row->i = static_cast<int>(token % dims.seq);
  row->offset = token * dims.heads * dims.d + int64_t{row->h} * dims.d;
  return true;
}

__global__ void FoldExtraKeysKernel(AttentionParams p, bf16* out, float* lse, const bf16* q,
                                    const bf16* k, const bf16* v) {
  const AttentionDims& dims = p.dims;
  Row row;
  if (!WarpRow(dims, &row)) return;
  float* row_lse = lse + RowIndex(dims, row.b, row.h, row.i);
  const float old_lse = *row_lse;
  float m = old_lse, s_bias = -INFINITY;
  const bf16* v_bias = nullptr;
  if (dims.bias_keys() > 0) {  // key and value 0 of the row's kv head
    const int64_t kv = KeyHead(dims, row.b, row.h / dims.group()).offset;
    s_bias = p.norm.scale * WarpDot(q + row.offset, k + kv, dims.d);
    v_bias = v + kv;
    m = fmaxf(m, s_bias);
  }
  const bool virtual_logit = p.norm.kind != AttentionNormalizer::kSoftmax;
  const float c = SinkLogitOf(p, row.h);
  if (virtual_logit) m = fmaxf(m, c);
  const float sum = expf(old_lse - m) + expf(s_bias - m) + (virtual_logit ? expf(c - m) : 0.0f);
  const float new_lse = m + logf(sum);
  const float factor = expf(old_lse - new_lse), w_bias = expf(s_bias - new_lse);
  bf16* x = out + row.offset;
  const int lane = threadIdx.x & 31;
  for (int col = lane; col < dims.d; col += 32) {
    float o = ToF(x[col]) * factor;
    if (v_bias != nullptr) o += w_bias * ToF(v_bias[col]);
    x[col] = FromF<bf16>(o);
  }
  __syncwarp();  // every lane has read old_lse
  if (lane == 0) *row_lse = new_lse;
}

// dq of the bias key, and p'_i, dS'_i per row (index RowIndex) for BiasKeyGradKernel.
__global__ void BiasKeyRowsKernel(AttentionDims dims, float scale, bf16* dq, float* p_bias,
                                  float* ds_bias, const bf16* dout, const bf16* q, const bf16* k,
                                  const bf16* v, const bf16* out, const float* lse) {
  Row row;
  if (!WarpRow(dims, &row)) return;
  const int64_t kv = KeyHead(dims, row.b, row.h / dims.group()).offset;
  const int64_t r = RowIndex(dims, row.b, row.h, row.i);
  const float p = expf(scale * WarpDot(q + row.offset, k + kv, dims.d) - lse[r]);
  const float d_row = WarpDot(dout + row.offset, out + row.offset, dims.d);
  const float ds = p * (WarpDot(dout + row.offset, v + kv, dims.d) - d_row);
  bf16* dq_row = dq + row.offset;
  const int lane = threadIdx.x & 31;
  for (int col = lane; col < dims.d; col += 32) {
    dq_row[col] = FromF<bf16>(ToF(dq_row[col]) + scale * ds * ToF(k[kv + col]));
  }
  if (lane == 0) {
    p_bias[r] = p;
    ds_bias[r] = ds;
  }
}

// dk' = scale sum dS'_i q_i and dv' = sum p'_i dout_i over the rows of (b, kv head g): kBlock
// threads, column c = thread % d of slice thread / d; slices summed in order at the end.
__global__ void __launch_bounds__(kBlock)
    BiasKeyGradKernel(AttentionDims dims, float scale, bf16* dk, bf16* dv, const float* p_bias,
                      const float* ds_bias, const bf16* dout, const bf16* q) {
  __shared__ float partial_k[kBlock], partial_v[kBlock];
  const int b = blockIdx.x / dims.kv_heads, g = blockIdx.x % dims.kv_heads;
  const int d = dims.d, slices = kBlock / d, col = threadIdx.x % d, slice = threadIdx.x / d;
  const int group = dims.group(), rows = group * dims.seq;
  float acc_k = 0.0f, acc_v = 0.0f;
  if (slice < slices) {
    for (int r = slice; r < rows; r += slices) {
      const int h = g * group + r / dims.seq, i = r % dims.seq;
      const int64_t at = RowIndex(dims, b, h, i);
      const int64_t x = QueryHead(dims, b, h).offset + int64_t{i} * dims.heads * d + col;
      acc_k += ds_bias[at] * ToF(q[x]);
      acc_v += p_bias[at] * ToF(dout[x]);
    }
  }
  partial_k[threadIdx.x] = acc_k;
  partial_v[threadIdx.x] = acc_v;
  __syncthreads();
  if (threadIdx.x >= d) return;
  float sum_k = 0.0f, sum_v = 0.0f;
  for (int s = 0; s < slices; ++s) {
    sum_k += partial_k[s * d + col];
    sum_v += partial_v[s * d + col];
  }
  const int64_t key0 = KeyHead(dims, b, g).offset + col;  // row 0 of batch b, kv head g
  dk[key0] = FromF<bf16>(scale * sum_k);
  dv[key0] = FromF<bf16>(sum_v);
}

void CheckBf16(std::initializer_list<const Tensor*> tensors, const char* what) {
  for (const Tensor* t : tensors) {
    CheckCuda(*t, what);
    SL_CHECK_MSG(t->dtype() == DType::kBF16,
                 absl::StrCat(what, ": expected bf16, got ", DTypeName(t->dtype())));
  }
}

size_t AlignUp256(size_t bytes) { return (bytes + 255) / 256 * 256; }

}  // namespace

void LaunchFoldExtraKeys(cudaStream_t stream, const Tensor& out, const Tensor& lse,
                         const Tensor& q, const Tensor& k, const Tensor& v,
                         const Tensor& sink_logit, const AttentionSpec& spec) {
  const AttentionDims dims =
      CheckAttentionShapes("FoldExtraKeys", out, lse, q, k, v, sink_logit, spec);
  CheckBf16({&out, &q, &k, &v}, "FoldExtraKeys");
  SL_CHECK_MSG(dims.bias_keys() <= 1,
               absl::StrCat("FoldExtraKeys: at most one bias key, got K - S = ", dims.bias_keys()));
  const int64_t rows = int64_t{dims.batch} * dims.seq * dims.heads;
  if (rows == 0) return;
  FoldExtraKeysKernel<<<GridFor(rows, kRowsPerBlock), kBlock, 0, stream>>>(
      ParamsOf(dims, spec, sink_logit), Ptr<bf16>(out), lse.f32(), Ptr<bf16>(q), Ptr<bf16>(k),
      Ptr<bf16>(v));
  SL_CUDA_LAUNCH_CHECK();
}

size_t BiasKeyBackwardScratchBytes(const Tensor& q) {
  const size_t rows = static_cast<size_t>(q.dim(0) * q.dim(1) * q.dim(2));
  return 2 * AlignUp256(rows * sizeof(float));
}

void LaunchBiasKeyBackward(cudaStream_t stream, void* scratch, const Tensor& dq, const Tensor& dk,
                           const Tensor& dv, const Tensor& dout, const Tensor& q, const Tensor& k,
                           const Tensor& v, const Tensor& out, const Tensor& lse, float scale) {
  CheckBf16({&dq, &dk, &dv, &dout, &q, &k, &v, &out}, "BiasKeyBackward");
  const AttentionDims dims = DimsOf(q, k);
  SL_CHECK_MSG(dims.bias_keys() == 1 && kBlock % dims.d == 0 && dims.d <= kBlock &&
                   dq.numel() == q.numel() && dk.numel() == k.numel() && dv.numel() == k.numel(),
               absl::StrCat("BiasKeyBackward: q ", q.ShapeString(), " k ", k.ShapeString(), " dq ",
                            dq.ShapeString(), " dk ", dk.ShapeString(), " dv ", dv.ShapeString(),
                            " (needs K = S + 1 and d dividing ", kBlock, ")"));
  const int64_t rows = int64_t{dims.batch} * dims.seq * dims.heads;
  if (rows == 0) return;
  float* p_bias = static_cast<float*>(scratch);
  float* ds_bias = p_bias + AlignUp256(rows * sizeof(float)) / sizeof(float);
  BiasKeyRowsKernel<<<GridFor(rows, kRowsPerBlock), kBlock, 0, stream>>>(
      dims, scale, Ptr<bf16>(dq), p_bias, ds_bias, Ptr<bf16>(dout), Ptr<bf16>(q), Ptr<bf16>(k),
      Ptr<bf16>(v), Ptr<bf16>(out), lse.f32());
  SL_CUDA_LAUNCH_CHECK();
  BiasKeyGradKernel<<<dims.batch * dims.kv_heads, kBlock, 0, stream>>>(
      dims, scale, Ptr<bf16>(dk), Ptr<bf16>(dv), p_bias, ds_bias, Ptr<bf16>(dout), Ptr<bf16>(q));
  SL_CUDA_LAUNCH_CHECK();
}

}  // namespace cuda
}  // namespace sinklab

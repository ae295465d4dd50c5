// Shapes, kernel arguments and the shared-memory tile helpers of the CUDA attention
// (attention_forward.cu, attention_probs.cu, attention_backward.cu).
//
// Tensors (layers/backend.h): q, out, dout, dq [B, S, H, d]; k, v, dk, dv [B, K, Hkv, d];
// the K - S leading keys are KV-bias keys seen by every query; query i sees keys
// j <= i + (K - S); query head h reads kv head h / (H / Hkv); lse [B, H, S] f32.
//
// Generic tiles (any d <= kGenericMaxD, f32 or bf16): a block of kGenericThreads threads works
// on a [kGenericRows x kGenericRows] tile of scores held in registers, row r by the quad of
// lanes 4r..4r+3, lane c of the quad holding the columns c + 4m (m < kColsPerLane). Operand
// rows are staged in shared memory as fp32 [rows][ld] with an odd ld, so the 8 rows a warp
// reads at once fall in distinct banks.
#ifndef SINKLAB_LAYERS_CUDA_ATTENTION_COMMON_CUH_
#define SINKLAB_LAYERS_CUDA_ATTENTION_COMMON_CUH_

#include <cstdint>
#include <initializer_list>
#include <type_traits>

#include "absl/strings/str_cat.h"
#include "layers/backend.h"
#include "layers/cuda/attention_normalizer.cuh"
#include "layers/cuda/kernel_util.cuh"

namespace sinklab {
namespace cuda {

struct AttentionDims {
  int batch, seq, keys, heads, kv_heads, d;  // B, S, K, H, Hkv, d
  __host__ __device__ int bias_keys() const { return keys - seq; }
  __host__ __device__ int group() const { return heads / kv_heads; }
  // Query rows over all heads: the length of lse and of each row_dots array.
  __host__ __device__ int64_t rows() const { return int64_t{batch} * heads * seq; }
};

// Everything a kernel reads besides its tensors.
struct AttentionParams {
  AttentionDims dims;
  NormalizerArgs norm;
  const void* sink_logit;  // [H], read by kSinkLogit only
  bool sink_bf16;          // its dtype (the bf16 compute copy, or f32)
};

// Checks the shapes (naming them on failure) and returns the dims. out and q [B, S, H, d]
// and k, v [B, K, Hkv, d] in one float dtype; lse [B, H, S] f32; sink_logit [H] for
// kSinkLogit.
inline AttentionDims CheckAttentionShapes(const char* what, const Tensor& out, const Tensor& lse,
                                          const Tensor& q, const Tensor& k, const Tensor& v,
                                          const Tensor& sink_logit, const AttentionSpec& spec) {
  const std::string shapes =
      absl::StrCat(what, ": q ", q.ShapeString(), " k ", k.ShapeString(), " v ", v.ShapeString(),
                   " out ", out.ShapeString(), " lse ", lse.ShapeString());
  for (const Tensor* t : {&out, &lse, &q, &k, &v}) CheckCuda(*t, what);
  SL_CHECK_MSG(q.rank() == 4 && k.rank() == 4 && v.rank() == 4 && out.rank() == 4, shapes);
  const AttentionDims dims{static_cast<int>(q.dim(0)), static_cast<int>(q.dim(1)),
                           static_cast<int>(k.dim(1)), static_cast<int>(q.dim(2)),
                           static_cast<int>(k.dim(2)), static_cast<int>(q.dim(3))};
  SL_CHECK_MSG(dims.kv_heads > 0 && dims.heads % dims.kv_heads == 0 && k.dim(0) == dims.batch &&
                   dims.keys >= dims.seq && k.dim(3) == dims.d,
               shapes);
  for (int i = 0; i < 4; ++i) {
    SL_CHECK_MSG(v.dim(i) == k.dim(i) && out.dim(i) == q.dim(i), shapes);
  }
  SL_CHECK_MSG(q.dtype() == k.dtype() && q.dtype() == v.dtype() && q.dtype() == out.dtype(),
               absl::StrCat(shapes, ": q, k, v and out need one dtype"));
  SL_CHECK_MSG(lse.dtype() == DType::kF32 && lse.numel() == dims.rows(), shapes);
  if (spec.normalizer == AttentionNormalizer::kSinkLogit) {
    CheckCuda(sink_logit, what);
    SL_CHECK_MSG(sink_logit.numel() == dims.heads &&
                     (sink_logit.dtype() == DType::kF32 || sink_logit.dtype() == DType::kBF16),
                 absl::StrCat(shapes, " sink_logit ", sink_logit.ShapeString()));
  }
  return dims;
}

// Clipped softmax's unclipped_values (backend.h): f32 on the device, q's shape; empty for the
// other normalizers.
inline void CheckUnclippedValues(const char* what, const Tensor& unclipped_values, const Tensor& q,
                                 const AttentionSpec& spec) {
  if (spec.normalizer != AttentionNormalizer::kClippedSoftmax) {
    SL_CHECK_MSG(unclipped_values.empty(),
                 absl::StrCat(what, ": unclipped_values ", unclipped_values.ShapeString(),
                              " is for clipped softmax only; expected it empty"));
    return;
  }
  CheckCuda(unclipped_values, what);
  bool same = unclipped_values.rank() == q.rank();
  for (int i = 0; same && i < q.rank(); ++i) same = unclipped_values.dim(i) == q.dim(i);
  SL_CHECK_MSG(same && unclipped_values.dtype() == DType::kF32,
               absl::StrCat(what, ": clipped softmax needs unclipped_values f32 of q's shape ",
                            q.ShapeString(), ", got ", unclipped_values.ShapeString()));
}

inline AttentionParams ParamsOf(const AttentionDims& dims, const AttentionSpec& spec,
                                const Tensor& sink_logit) {
  const bool sink = spec.normalizer == AttentionNormalizer::kSinkLogit;
  return AttentionParams{dims, NormalizerArgsOf(spec), sink ? sink_logit.data() : nullptr,
                         sink && sink_logit.dtype() == DType::kBF16};
}

// b_h of kSinkLogit (0 otherwise).
__device__ __forceinline__ float SinkLogitOf(const AttentionParams& p, int h) {
  if (p.norm.kind != AttentionNormalizer::kSinkLogit) return 0.0f;
  return p.sink_bf16 ? ToF(static_cast<const bf16*>(p.sink_logit)[h])
                     : static_cast<const float*>(p.sink_logit)[h];
}

// One head of a [B, T, heads, d] tensor as a [T, d] matrix: element (t, c) is at
// offset + t * stride + c.
struct HeadView {
  int64_t offset, stride;
};
__device__ __forceinline__ HeadView QueryHead(const AttentionDims& dims, int b, int h) {
  return {(int64_t{b} * dims.seq * dims.heads + h) * dims.d, int64_t{dims.heads} * dims.d};
}
__device__ __forceinline__ HeadView KeyHead(const AttentionDims& dims, int b, int g) {
  return {(int64_t{b} * dims.keys * dims.kv_heads + g) * dims.d, int64_t{dims.kv_heads} * dims.d};
}
// Index of lse[b, h, i].
__device__ __forceinline__ int64_t RowIndex(const AttentionDims& dims, int b, int h, int i) {
  return (int64_t{b} * dims.heads + h) * dims.seq + i;
}

// ---- Generic tiles ----------------------------------------------------------------------
constexpr int kGenericRows = 32;                   // rows and columns of a score tile
constexpr int kGenericThreads = 4 * kGenericRows;  // a quad per row
constexpr int kColsPerLane = kGenericRows / 4;     // columns c + 4m of lane c
constexpr int kGenericMaxD = 128;

__host__ __device__ inline int TileLd(int d) { return d | 1; }  // odd: conflict-free column reads
inline size_t TileBytes(int d) { return sizeof(float) * kGenericRows * TileLd(d); }

// tile[r][c] = x[row0 + r, c] of one head as fp32 for r < kGenericRows, c < d; rows at or
// past `limit` are zero. Every thread of the block takes part.
template <typename T>
__device__ __forceinline__ void LoadTile(float* tile, int ld, const T* x, HeadView view, int row0,
                                         int limit, int d) {
  for (int idx = threadIdx.x; idx < kGenericRows * d; idx += blockDim.x) {
    const int r = idx / d, c = idx - r * d, row = row0 + r;
    tile[r * ld + c] = row < limit ? ToF(x[view.offset + row * view.stride + c]) : 0.0f;
  }
}

// dots[m] = a_row . b[m-th row of this lane] for the rows b_rows + 4m ld (kColsPerLane rows
// spaced by 4, starting at this lane's quad index), over d.
__device__ __forceinline__ void RowDots(const float* a_row, const float* b_rows, int ld, int d,
                                        float (&dots)[kColsPerLane]) {
#pragma unroll
  for (int m = 0; m < kColsPerLane; ++m) dots[m] = 0.0f;
  for (int c = 0; c < d; ++c) {
    const float a = a_row[c];
#pragma unroll
    for (int m = 0; m < kColsPerLane; ++m) dots[m] = fmaf(a, b_rows[4 * m * ld + c], dots[m]);
  }
}

// acc[m'] += sum_j w_j rows[j][quad + 4m'] over the tile's kGenericRows rows j, where w_j is
// the quad's weight of column j (held by lane j % 4 as w[j / 4]); columns at or past d are
// skipped. The whole warp takes part (shuffles).
template <int kMaxD>
__device__ __forceinline__ void AccumulateRows(float (&acc)[kMaxD / 4],
                                               const float (&w)[kColsPerLane], const float* rows,
                                               int ld, int d) {
  const int lane = threadIdx.x & 31, quad = lane & 3;
#pragma unroll
  for (int j = 0; j < kGenericRows; ++j) {
    const float wj = __shfl_sync(0xffffffffu, w[j / 4], (lane & ~3) | (j & 3));
    const float* row = rows + j * ld + quad;
#pragma unroll
    for (int m = 0; m < kMaxD / 4; ++m) {
      if (quad + 4 * m < d) acc[m] = fmaf(wj, row[4 * m], acc[m]);
    }
  }
}

// Raises the dynamic shared-memory limit of `kernel` to `bytes` when above the default 48 KiB.
template <typename Kernel>
void AllowSharedMemory(Kernel kernel, size_t bytes) {
  if (bytes > (size_t{48} << 10)) {
    SL_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       static_cast<int>(bytes)));
  }
}

// Calls f(std::integral_constant<int, kMaxD>{}) with the smallest of 32, 64, 128 >= d.
template <typename F>
void DispatchHeadDim(int d, F&& f) {
  SL_CHECK_MSG(d >= 1 && d <= kGenericMaxD,
               absl::StrCat("attention supports head dims 1..", kGenericMaxD, ", got ", d));
  if (d <= 32) {
    f(std::integral_constant<int, 32>{});
  } else if (d <= 64) {
    f(std::integral_constant<int, 64>{});
  } else {
    f(std::integral_constant<int, 128>{});
  }
}

// ---- Launchers defined in the other attention files ---------------------------------------
// attention_probs.cu: probs [B, H, S, K] f32 from q, k and the stored lse.
void LaunchAttentionProbs(cudaStream_t stream, const AttentionParams& p, const Tensor& probs,
                          const Tensor& lse, const Tensor& q, const Tensor& k);
// attention_forward_mma.cu: whether the tensor-core kernels take these tensors (bf16, 16-byte
// aligned, d = 64 or 128), and the tensor-core forward (unclipped_values: clipped softmax's C,
// else empty).
bool MmaAttentionSupports(const AttentionDims& dims, std::initializer_list<const Tensor*> tensors);
void LaunchMmaForward(cudaStream_t stream, const AttentionParams& p, const Tensor& out,
                      const Tensor& lse, const Tensor& unclipped_values, const Tensor& q,
                      const Tensor& k, const Tensor& v);
// attention_backward_dq_mma.cu and attention_backward_dkv_mma.cu: the tensor-core dq, and
// dk and dv. The dq kernel computes each row's sum D_i from dout and out, or for clipped
// softmax from dout and unclipped_values (else empty), and writes it to row_dots (f32, lse's
// layout; softpick: then e^-lse in the same layout, RowDotArrays) for the dk/dv kernel, which
// must run after it; with dq empty it writes row_dots only. dk or dv may be empty (skipped).
// Each adds its gradients to dq, dk, dv, or with `assign` writes them over every row (the
// values there are not read: no zero fill needed).
inline int64_t RowDotArrays(const AttentionParams& p) {
  return p.norm.kind == AttentionNormalizer::kSoftpick ? 2 : 1;
}
void LaunchMmaDq(cudaStream_t stream, const AttentionParams& p, const Tensor& dq,
                 const Tensor& row_dots, const Tensor& dout, const Tensor& q, const Tensor& k,
                 const Tensor& v, const Tensor& out, const Tensor& unclipped_values,
                 const Tensor& lse, bool assign);
void LaunchMmaDkv(cudaStream_t stream, const AttentionParams& p, const Tensor& dk, const Tensor& dv,
                  const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v,
                  const Tensor& row_dots, const Tensor& lse, bool assign);

}  // namespace cuda
}  // namespace sinklab

#endif  // SINKLAB_LAYERS_CUDA_ATTENTION_COMMON_CUH_

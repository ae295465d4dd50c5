// QK-norm then RoPE in one pass (Backend::RmsNormRopeForward / Backward; the default runs
// layers/cuda/rmsnorm.cu's and rope.cu's kernels one after the other, with the normalized
// q or k going through memory in between). Rows are heads: d = 64 or 128 channels, L = d / 8
// lanes of one 8-channel packet each; lane l holds channels [8 l, 8 l + 8), and its rotation
// partner (channel i +- d/2) sits in lane l ^ (L / 2), one shuffle away. Per row, with r the
// rstd, y = x r w and RoPE's rotation R(t) (rope.cu):
//   forward:   out = R(t) y
//   backward:  g = R(t)^T dout,  dx_j = r w_j g_j - x_j r^3 / d sum_k g_k w_k x_k,
//              dw_j += sum_rows g_j x_j r
// (rmsnorm.cu's formulas with g for dy). The backward's dweight: each block adds its row
// groups' sums into one partial row, and the partial rows are added in block order.
#include <algorithm>

#include "layers/cuda/cuda_backend.h"
#include "layers/cuda/kernel_util.cuh"

namespace sinklab {
namespace cuda {
namespace {

constexpr int kMaxBlocks = 528;  // backward: ~4 blocks per SM, few partial rows

// Row `row` = (b T + t) H + h of [B, T, H, d]: lane's cos and sin of its channel pairs.
struct Rotation {
  float c[kVec], s[kVec];
  bool low;  // channels < d/2
};
template <int L>
__device__ __forceinline__ Rotation RotationOf(const float* cos, const float* sin, int64_t row,
                                               int64_t seq, int64_t heads, int lane) {
  constexpr int kHalf = L * kVec / 2;
  Rotation rot;
  rot.low = lane < L / 2;
  const int64_t t = (row / heads) % seq;
  const int64_t pair = t * kHalf + (rot.low ? lane : lane - L / 2) * kVec;
  LoadF<kVec>(cos + pair, rot.c);
  LoadF<kVec>(sin + pair, rot.s);
  return rot;
}

// The partner lane's packet of v (every lane of the warp must call it).
template <int L>
__device__ __forceinline__ void Partner(const float (&v)[kVec], float (&partner)[kVec]) {
#pragma unroll
  for (int k = 0; k < kVec; ++k) partner[k] = __shfl_xor_sync(0xffffffffu, v[k], L / 2);
}

template <int L, typename T, typename TW>
__global__ void RmsNormRopeForwardKernel(T* out, float* rstd, const T* inp, const TW* weight,
                                         const float* cos, const float* sin, int64_t rows,
                                         int64_t seq, int64_t heads, float eps) {
  constexpr int kD = L * kVec;
  ForEachRowGroup<L>(rows, [&](int64_t row, int lane, bool active) {
    const int64_t r = active ? row : rows - 1;  // past the end: the last row, nothing written
    const int64_t at = r * kD + lane * kVec;
    float x[kVec], w[kVec], y[kVec], partner[kVec];
    LoadF<kVec>(inp + at, x);
    LoadF<kVec>(weight + lane * kVec, w);
    const Rotation rot = RotationOf<L>(cos, sin, r, seq, heads, lane);
    float sum_sq = 0.0f;
#pragma unroll
    for (int k = 0; k < kVec; ++k) sum_sq += x[k] * x[k];
    const float rs = rsqrtf(GroupSum<L>(sum_sq) / static_cast<float>(kD) + eps);
#pragma unroll
    for (int k = 0; k < kVec; ++k) y[k] = x[k] * rs * w[k];
    Partner<L>(y, partner);
#pragma unroll
    for (int k = 0; k < kVec; ++k) {
      y[k] = rot.low ? y[k] * rot.c[k] - partner[k] * rot.s[k]
                     : y[k] * rot.c[k] + partner[k] * rot.s[k];
    }
    if (!active) return;
    if (lane == 0) rstd[row] = rs;
    StoreF<kVec>(out + at, y);
  });
}

template <int L, typename T, typename TW>
__global__ void __launch_bounds__(kBlock)
    RmsNormRopeBackwardKernel(T* dinp, float* partials, const T* dout, const T* inp,
                              const TW* weight, const float* rstd, const float* cos,
                              const float* sin, int64_t rows, int64_t seq, int64_t heads) {
  constexpr int kGroups = kBlock / L, kD = L * kVec;
  __shared__ float group_sums[kGroups][kD];
  float dw[kVec] = {};
  ForEachRowGroup<L>(rows, [&](int64_t row, int lane, bool active) {
    const int64_t r = active ? row : rows - 1;
    const int64_t at = r * kD + lane * kVec;
    float x[kVec], g[kVec], w[kVec], partner[kVec];
    LoadF<kVec>(inp + at, x);
    LoadF<kVec>(dout + at, g);
    LoadF<kVec>(weight + lane * kVec, w);
    const Rotation rot = RotationOf<L>(cos, sin, r, seq, heads, lane);
    Partner<L>(g, partner);
    float dot = 0.0f;  // sum_k g_k w_k x_k
#pragma unroll
    for (int k = 0; k < kVec; ++k) {
      g[k] = rot.low ? g[k] * rot.c[k] + partner[k] * rot.s[k]
                     : g[k] * rot.c[k] - partner[k] * rot.s[k];
      dot += g[k] * w[k] * x[k];
    }
    dot = GroupSum<L>(dot);
    if (!active) return;
    const float rs = rstd[row];
    const float coef = dot * rs * rs * rs / static_cast<float>(kD);
    float dx[kVec];
#pragma unroll
    for (int k = 0; k < kVec; ++k) {
      dx[k] = rs * w[k] * g[k] - coef * x[k];
      dw[k] += g[k] * x[k] * rs;
    }
    StoreF<kVec>(dinp + at, dx);
  });
  // Every thread stores (threads whose rows ran out keep dw = 0).
  const int my_lane = (threadIdx.x & 31) % L, group = threadIdx.x / L;
#pragma unroll
  for (int k = 0; k < kVec; ++k) group_sums[group][my_lane * kVec + k] = dw[k];
  __syncthreads();
  for (int col = threadIdx.x; col < kD; col += kBlock) {
    float sum = 0.0f;
    for (int j = 0; j < kGroups; ++j) sum += group_sums[j][col];
    partials[blockIdx.x * kD + col] = sum;
  }
}

// Whether the fused kernels take x [B, T, H, d]: d = 64 or 128, 16-byte packets everywhere,
// f32 tables covering T positions.
bool Fusable(const Tensor& x, const Tensor& weight, const Tensor& cos, const Tensor& sin,
             std::initializer_list<const Tensor*> rows) {
  if (x.rank() != 4 || weight.numel() != x.dim(3) || (x.dim(3) != 64 && x.dim(3) != 128)) {
    return false;
  }
  const int64_t half = x.dim(3) / 2;
  if (cos.dtype() != DType::kF32 || sin.dtype() != DType::kF32 || cos.numel() < x.dim(1) * half ||
      sin.numel() < x.dim(1) * half || !CanVectorize(half, cos, sin) ||
      !CanVectorize(x.dim(3), x, weight)) {
    return false;
  }
  for (const Tensor* t : rows) {
    if (t->numel() != x.numel() || t->dtype() != x.dtype() || !CanVectorize(x.dim(3), *t)) {
      return false;
    }
  }
  return true;
}

}  // namespace
}  // namespace cuda

void CudaBackend::RmsNormRopeForward(const Tensor& out, const Tensor& rstd, const Tensor& inp,
                                     const Tensor& weight, float eps, const Tensor& cos,
                                     const Tensor& sin) {
  const int64_t rows = inp.rank() == 4 ? inp.numel() / inp.dim(3) : 0;
  if (!cuda::Fusable(inp, weight, cos, sin, {&out}) || rstd.numel() != rows ||
      rstd.dtype() != DType::kF32) {
    return Backend::RmsNormRopeForward(out, rstd, inp, weight, eps, cos, sin);
  }
  for (const Tensor* t : {&out, &rstd, &inp, &weight, &cos, &sin}) {
    cuda::CheckCuda(*t, "RmsNormRopeForward");
  }
  if (rows == 0) return;
  cuda::DispatchFloat(inp.dtype(), [&](auto t) {
    using T = decltype(t);
    cuda::DispatchFloat(weight.dtype(), [&](auto tw) {
      using TW = decltype(tw);
      cuda::DispatchHeadLanes(inp.dim(3), "RmsNormRopeForward", [&](auto lanes) {
        constexpr int L = decltype(lanes)::value;
        cuda::RmsNormRopeForwardKernel<L, T, TW>
            <<<cuda::GridFor(rows * L), cuda::kBlock, 0, stream_>>>(
                cuda::Ptr<T>(out), rstd.f32(), cuda::Ptr<T>(inp), cuda::Ptr<TW>(weight), cos.f32(),
                sin.f32(), rows, inp.dim(1), inp.dim(2), eps);
      });
    });
  });
  SL_CUDA_LAUNCH_CHECK();
}

void CudaBackend::RmsNormRopeBackward(const Tensor& dinp, const Tensor& dweight, const Tensor& dout,
                                      const Tensor& inp, const Tensor& weight, const Tensor& rstd,
                                      const Tensor& cos, const Tensor& sin, const Tensor& scratch) {
  const int64_t rows = inp.rank() == 4 ? inp.numel() / inp.dim(3) : 0;
  if (!cuda::Fusable(inp, weight, cos, sin, {&dinp, &dout}) || rstd.numel() != rows ||
      rstd.dtype() != DType::kF32 || dweight.numel() != weight.numel() ||
      dweight.dtype() != DType::kF32) {
    return Backend::RmsNormRopeBackward(dinp, dweight, dout, inp, weight, rstd, cos, sin, scratch);
  }
  for (const Tensor* t : {&dinp, &dweight, &dout, &inp, &weight, &rstd, &cos, &sin}) {
    cuda::CheckCuda(*t, "RmsNormRopeBackward");
  }
  if (rows == 0) return;
  const int64_t d = inp.dim(3);
  cuda::DispatchFloat(inp.dtype(), [&](auto t) {
    using T = decltype(t);
    cuda::DispatchFloat(weight.dtype(), [&](auto tw) {
      using TW = decltype(tw);
      cuda::DispatchHeadLanes(d, "RmsNormRopeBackward", [&](auto lanes) {
        constexpr int L = decltype(lanes)::value;
        const int64_t blocks = std::min<int64_t>(cuda::GridFor(rows * L), cuda::kMaxBlocks);
        float* partials = static_cast<float*>(Workspace(blocks * d * sizeof(float)));
        cuda::RmsNormRopeBackwardKernel<L, T, TW>
            <<<static_cast<unsigned>(blocks), cuda::kBlock, 0, stream_>>>(
                cuda::Ptr<T>(dinp), partials, cuda::Ptr<T>(dout), cuda::Ptr<T>(inp),
                cuda::Ptr<TW>(weight), rstd.f32(), cos.f32(), sin.f32(), rows, inp.dim(1),
                inp.dim(2));
        SL_CUDA_LAUNCH_CHECK();
        AddRmsNormSplits(dweight, partials, blocks);
      });
    });
  });
}

}  // namespace sinklab

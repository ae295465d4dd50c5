// CUDA rotary position embedding (Su et al. 2021), rotate-half convention of Hugging Face
// Llama (reference: layers/cpu/rope.cc). For i < d/2 at position t, with c = cos[t, i] and
// s = sin[t, i]:
//   forward:  x'_i = x_i c - x_{i+d/2} s,     x'_{i+d/2} = x_{i+d/2} c + x_i s
//   backward: dx_i (= or +=) g_i c + g_{i+d/2} s,    dx_{i+d/2} (= or +=) g_{i+d/2} c - g_i s
//             (R^T g)
// One thread per packet of W pairs (i, i + d/2) of one head of one row: it reads both halves
// before writing them, so the forward may run in place (out == inp).
#include "layers/cuda/cuda_backend.h"
#include "layers/cuda/kernel_util.cuh"

namespace sinklab {
namespace cuda {
namespace {

// y [B, T, H, d] (=, or += when kAccumulate) rotation of x by +angle (forward) or -angle
// (kBackward).
template <int W, bool kBackward, bool kAccumulate, typename T>
__global__ void RopeKernel(T* y, const T* x, const float* cos, const float* sin,
                           int64_t head_rows, int64_t seq, int64_t heads, int64_t half) {
  const int64_t packets = half / W;
  const int64_t total = head_rows * packets;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < total;
       i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t head_row = i / packets;  // (b T + t) H + h
    const int64_t pair = (i - head_row * packets) * W;
    const int64_t t = (head_row / heads) % seq;
    const int64_t lo_offset = head_row * 2 * half + pair;
    const int64_t hi_offset = lo_offset + half;
    float lo[W], hi[W], c[W], s[W];
    LoadF<W>(x + lo_offset, lo);
    LoadF<W>(x + hi_offset, hi);
    LoadF<W>(cos + t * half + pair, c);
    LoadF<W>(sin + t * half + pair, s);
    float new_lo[W], new_hi[W];
    if constexpr (kBackward) {
      float old_lo[W] = {}, old_hi[W] = {};
      if constexpr (kAccumulate) {
        LoadF<W>(y + lo_offset, old_lo);
        LoadF<W>(y + hi_offset, old_hi);
      }
#pragma unroll
      for (int k = 0; k < W; ++k) {
        new_lo[k] = old_lo[k] + (lo[k] * c[k] + hi[k] * s[k]);
        new_hi[k] = old_hi[k] + (hi[k] * c[k] - lo[k] * s[k]);
      }
    } else {
#pragma unroll
      for (int k = 0; k < W; ++k) {
        new_lo[k] = lo[k] * c[k] - hi[k] * s[k];
        new_hi[k] = hi[k] * c[k] + lo[k] * s[k];
      }
    }
    StoreF<W>(y + lo_offset, new_lo);
    StoreF<W>(y + hi_offset, new_hi);
  }
}

template <bool kBackward, bool kAccumulate>
void Rotate(cudaStream_t stream, const Tensor& y, const Tensor& x, const Tensor& cos,
            const Tensor& sin, const char* what) {
  SL_CHECK_MSG(x.rank() == 4 && y.rank() == 4 && y.numel() == x.numel() &&
                   y.dtype() == x.dtype() && x.dim(3) % 2 == 0,
               absl::StrCat(what, ": expects y, x [B, T, H, d] of one dtype, d even; got ",
                            y.ShapeString(), " ", DTypeName(y.dtype()), ", ", x.ShapeString(),
                            " ", DTypeName(x.dtype())));
  const int64_t seq = x.dim(1), heads = x.dim(2), half = x.dim(3) / 2;
  SL_CHECK_MSG(cos.dtype() == DType::kF32 && sin.dtype() == DType::kF32 &&
                   cos.numel() >= seq * half && sin.numel() >= seq * half,
               absl::StrCat(what, ": x ", x.ShapeString(), " needs f32 tables [>= ", seq, ", ",
                            half, "], got cos ", cos.ShapeString(), " sin ", sin.ShapeString()));
  CheckCuda(y, what);
  CheckCuda(x, what);
  CheckCuda(cos, what);
  CheckCuda(sin, what);
  const int64_t head_rows = x.numel() / (2 * half);
  if (head_rows == 0) return;
  DispatchFloat(x.dtype(), [&](auto t) {
    using T = decltype(t);
    DispatchWidth(CanVectorize(half, y, x, cos, sin), [&](auto width) {
      constexpr int W = decltype(width)::value;
      RopeKernel<W, kBackward, kAccumulate, T><<<GridFor(head_rows * half / W), kBlock, 0, stream>>>(
          Ptr<T>(y), Ptr<T>(x), cos.f32(), sin.f32(), head_rows, seq, heads, half);
    });
  });
  SL_CUDA_LAUNCH_CHECK();
}

}  // namespace
}  // namespace cuda

void CudaBackend::RopeForward(const Tensor& out, const Tensor& inp, const Tensor& cos,
                              const Tensor& sin) {
  cuda::Rotate</*kBackward=*/false, /*kAccumulate=*/false>(stream_, out, inp, cos, sin,
                                                            "RopeForward");
}

void CudaBackend::RopeBackward(const Tensor& dinp, const Tensor& dout, const Tensor& cos,
                               const Tensor& sin, GradWrite dinp_write) {
  SL_CHECK_MSG(dinp.data() != dout.data(), "RopeBackward: dinp must not alias dout");
  if (dinp_write == GradWrite::kAccumulate) {
    cuda::Rotate<true, true>(stream_, dinp, dout, cos, sin, "RopeBackward");
  } else {
    cuda::Rotate<true, false>(stream_, dinp, dout, cos, sin, "RopeBackward");
  }
}

}  // namespace sinklab

// CUDA SwiGLU (Shazeer 2020; reference: layers/cpu/swiglu.cc): out = silu(gate) * up,
// silu(x) = x sigmoid(x), silu'(x) = sigmoid(x) (1 + x (1 - sigmoid(x))).
// Elementwise over [N, F]: one thread per packet of kVec elements (16-byte bf16 accesses)
// where the tensors are aligned, then single elements for the tail.
#include "layers/cuda/cuda_backend.h"
#include "layers/cuda/kernel_util.cuh"

namespace sinklab {
namespace cuda {
namespace {

template <int W, typename T>
__global__ void SwigluForwardKernel(T* out, const T* gate, const T* up, int64_t n) {
  ForEachPacket<W>(n, [&](int64_t i, auto width) {
    constexpr int P = decltype(width)::value;
    float g[P], u[P];
    LoadF<P>(gate + i, g);
    LoadF<P>(up + i, u);
#pragma unroll
    for (int k = 0; k < P; ++k) u[k] *= g[k] * Sigmoid(g[k]);
    StoreF<P>(out + i, u);
  });
}

// dgate, dup = (either may be null: not needed).
template <int W, typename T>
__global__ void SwigluBackwardKernel(T* dgate, T* dup, const T* dout, const T* gate,
                                     const T* up, int64_t n) {
  ForEachPacket<W>(n, [&](int64_t i, auto width) {
    constexpr int P = decltype(width)::value;
    float dy[P], g[P], u[P];
    LoadF<P>(dout + i, dy);
    LoadF<P>(gate + i, g);
    LoadF<P>(up + i, u);
    if (dup != nullptr) {
      float d[P];
#pragma unroll
      for (int k = 0; k < P; ++k) d[k] = dy[k] * g[k] * Sigmoid(g[k]);
      StoreF<P>(dup + i, d);
    }
    if (dgate != nullptr) {
      float d[P];
#pragma unroll
      for (int k = 0; k < P; ++k) {
        const float sig = Sigmoid(g[k]);
        d[k] = dy[k] * u[k] * sig * (1.0f + g[k] * (1.0f - sig));
      }
      StoreF<P>(dgate + i, d);
    }
  });
}

}  // namespace
}  // namespace cuda

using cuda::AllAligned16;
using cuda::DispatchFloat;
using cuda::DispatchWidth;
using cuda::GridFor;
using cuda::Ptr;

void CudaBackend::SwigluForward(const Tensor& out, const Tensor& gate, const Tensor& up) {
  cuda::CheckLike(out, gate, "SwigluForward out");
  cuda::CheckLike(up, gate, "SwigluForward up");
  cuda::CheckCuda(gate, "SwigluForward gate");
  const int64_t n = gate.numel();
  DispatchFloat(gate.dtype(), [&](auto t) {
    using T = decltype(t);
    DispatchWidth(AllAligned16(out, gate, up), [&](auto width) {
      constexpr int W = decltype(width)::value;
      cuda::SwigluForwardKernel<W, T><<<GridFor(n / W), cuda::kBlock, 0, stream_>>>(
          Ptr<T>(out), Ptr<T>(gate), Ptr<T>(up), n);
    });
  });
  SL_CUDA_LAUNCH_CHECK();
}

void CudaBackend::SwigluBackward(const Tensor& dgate, const Tensor& dup, const Tensor& dout,
                                 const Tensor& gate, const Tensor& up) {
  cuda::CheckLike(dout, gate, "SwigluBackward dout");
  cuda::CheckLike(up, gate, "SwigluBackward up");
  cuda::CheckCuda(gate, "SwigluBackward gate");
  if (!dgate.empty()) cuda::CheckLike(dgate, gate, "SwigluBackward dgate");
  if (!dup.empty()) cuda::CheckLike(dup, gate, "SwigluBackward dup");
  if (dgate.empty() && dup.empty()) return;
  const int64_t n = gate.numel();
  DispatchFloat(gate.dtype(), [&](auto t) {
    using T = decltype(t);
    DispatchWidth(AllAligned16(dgate, dup, dout, gate, up), [&](auto width) {
      constexpr int W = decltype(width)::value;
      cuda::SwigluBackwardKernel<W, T><<<GridFor(n / W), cuda::kBlock, 0, stream_>>>(
          cuda::PtrOrNull<T>(dgate), cuda::PtrOrNull<T>(dup), Ptr<T>(dout), Ptr<T>(gate),
          Ptr<T>(up), n);
    });
  });
  SL_CUDA_LAUNCH_CHECK();
}

}  // namespace sinklab

// CUDA sigmoid gate of gated attention (Qiu et al. 2025; reference: layers/cpu/gate.cc):
// out = y * g, g = sigmoid(z), one gate per group of c = C / G consecutive channels
// (c = 1 elementwise, c = d_h headwise). Backward: dy (+)= dout g;
// dz (+)= g (1 - g) sum_{its c channels} dout y.
//
// Plan: c == 1 is elementwise (packets of kVec gates and channels). c > 1: a group of L
// lanes per gate (kernel_util.cuh's ForEachRowGroup; headwise d_h = 64: 8 lanes of 8-channel
// packets, 4 gates per warp) walks its c channels in packets (kVec when c allows), so loads
// are coalesced and the per-gate sum of the backward is a fixed shuffle tree (deterministic,
// no shared memory). A group's first lane reads its logit and writes its gate, so gate may
// alias logits. out is computed with the gate as stored (rounded to its dtype), the same g the
// backward reads. The backward overwrites dy and dlogits, or adds to them (add).
#include "layers/cuda/cuda_backend.h"
#include "layers/cuda/kernel_util.cuh"

namespace sinklab {
namespace cuda {
namespace {

// g rounded to the gate's storage type.
template <typename TG>
__device__ __forceinline__ float StoredSigmoid(float z) {
  return ToF(FromF<TG>(Sigmoid(z)));
}

template <int W, typename T, typename TG>
__global__ void GateElementwiseForwardKernel(T* out, TG* gate, const T* y, const TG* logits,
                                             int64_t n) {
  ForEachPacket<W>(n, [&](int64_t i, auto width) {
    constexpr int P = decltype(width)::value;
    float z[P], v[P];
    LoadF<P>(logits + i, z);
    LoadF<P>(y + i, v);
#pragma unroll
    for (int k = 0; k < P; ++k) {
      z[k] = StoredSigmoid<TG>(z[k]);
      v[k] *= z[k];
    }
    StoreF<P>(out + i, v);
    StoreF<P>(gate + i, z);
  });
}

template <int W, typename T, typename TG>
__global__ void GateElementwiseBackwardKernel(T* dy, TG* dlogits, const T* dout, const T* y,
                                              const TG* gate, int64_t n, bool add) {
  ForEachPacket<W>(n, [&](int64_t i, auto width) {
    constexpr int P = decltype(width)::value;
    float d[P], g[P];
    LoadF<P>(dout + i, d);
    LoadF<P>(gate + i, g);
    if (dy != nullptr) {
      float acc[P] = {};
      if (add) LoadF<P>(dy + i, acc);
#pragma unroll
      for (int k = 0; k < P; ++k) acc[k] += d[k] * g[k];
      StoreF<P>(dy + i, acc);
    }
    if (dlogits != nullptr) {
      float v[P], acc[P] = {};
      LoadF<P>(y + i, v);
      if (add) LoadF<P>(dlogits + i, acc);
#pragma unroll
      for (int k = 0; k < P; ++k) acc[k] += d[k] * v[k] * g[k] * (1.0f - g[k]);
      StoreF<P>(dlogits + i, acc);
    }
  });
}

template <int W, int L, typename T, typename TG>
__global__ void GateGroupForwardKernel(T* out, TG* gate, const T* y, const TG* logits,
                                       int64_t gates, int64_t c) {
  ForEachRowGroup<L>(gates, [&](int64_t j, int lane, bool active) {
    // The group's first lane alone reads logits[j] and writes gate[j] (they may alias).
    float g = active && lane == 0 ? StoredSigmoid<TG>(ToF(logits[j])) : 0.0f;
    g = __shfl_sync(0xffffffffu, g, (threadIdx.x & 31) & ~(L - 1));
    if (!active) return;
    for (int64_t i = j * c + lane * W; i < (j + 1) * c; i += L * W) {
      float v[W];
      LoadF<W>(y + i, v);
#pragma unroll
      for (int k = 0; k < W; ++k) v[k] *= g;
      StoreF<W>(out + i, v);
    }
    if (lane == 0) gate[j] = FromF<TG>(g);
  });
}

template <int W, int L, typename T, typename TG>
__global__ void GateGroupBackwardKernel(T* dy, TG* dlogits, const T* dout, const T* y,
                                        const TG* gate, int64_t gates, int64_t c, bool add) {
  ForEachRowGroup<L>(gates, [&](int64_t j, int lane, bool active) {
    const float g = active ? ToF(gate[j]) : 0.0f;
    float dot = 0.0f;  // this lane's part of the sum over the group of dout * y
    for (int64_t i = j * c + lane * W; active && i < (j + 1) * c; i += L * W) {
      float d[W];
      LoadF<W>(dout + i, d);
      if (dlogits != nullptr) {
        float v[W];
        LoadF<W>(y + i, v);
#pragma unroll
        for (int k = 0; k < W; ++k) dot += d[k] * v[k];
      }
      if (dy != nullptr) {
        float acc[W] = {};
        if (add) LoadF<W>(dy + i, acc);
#pragma unroll
        for (int k = 0; k < W; ++k) acc[k] += d[k] * g;
        StoreF<W>(dy + i, acc);
      }
    }
    if (dlogits == nullptr) return;
    dot = GroupSum<L>(dot);
    if (active && lane == 0) {
      dlogits[j] = FromF<TG>((add ? ToF(dlogits[j]) : 0.0f) + dot * g * (1.0f - g));
    }
  });
}

// Channels per gate c, after checking y (numel N C) against gate [N, G].
int64_t ChannelsPerGate(const Tensor& y, const Tensor& gate, const char* what) {
  SL_CHECK_MSG(gate.rank() == 2 && gate.numel() > 0 && y.numel() % gate.numel() == 0,
               absl::StrCat(what, ": y ", y.ShapeString(), " gate ", gate.ShapeString()));
  CheckCuda(y, what);
  CheckCuda(gate, what);
  return y.numel() / gate.numel();
}

}  // namespace
}  // namespace cuda

using cuda::AllAligned16;
using cuda::CanVectorize;
using cuda::DispatchFloat;
using cuda::DispatchWidth;
using cuda::GridFor;
using cuda::kBlock;
using cuda::Ptr;
using cuda::PtrOrNull;

void CudaBackend::SigmoidGateForward(const Tensor& out, const Tensor& gate, const Tensor& y,
                                     const Tensor& logits) {
  const int64_t c = cuda::ChannelsPerGate(y, gate, "SigmoidGateForward");
  cuda::CheckLike(out, y, "SigmoidGateForward out");
  cuda::CheckLike(logits, gate, "SigmoidGateForward logits");
  const int64_t gates = gate.numel();
  DispatchFloat(y.dtype(), [&](auto t) {
    using T = decltype(t);
    DispatchFloat(gate.dtype(), [&](auto tg) {
      using TG = decltype(tg);
      if (c == 1) {
        DispatchWidth(AllAligned16(out, gate, y, logits), [&](auto width) {
          constexpr int W = decltype(width)::value;
          cuda::GateElementwiseForwardKernel<W, T, TG>
              <<<GridFor(gates / W), kBlock, 0, stream_>>>(Ptr<T>(out), Ptr<TG>(gate),
                                                           Ptr<T>(y), Ptr<TG>(logits), gates);
        });
      } else {
        DispatchWidth(CanVectorize(c, out, y), [&](auto width) {
          constexpr int W = decltype(width)::value;
          cuda::DispatchLanes(c, W, [&](auto lanes) {
            constexpr int L = decltype(lanes)::value;
            cuda::GateGroupForwardKernel<W, L, T, TG>
                <<<GridFor(gates * L), kBlock, 0, stream_>>>(
                    Ptr<T>(out), Ptr<TG>(gate), Ptr<T>(y), Ptr<TG>(logits), gates, c);
          });
        });
      }
    });
  });
  SL_CUDA_LAUNCH_CHECK();
}

void CudaBackend::SigmoidGateBackward(const Tensor& dy, const Tensor& dlogits, const Tensor& dout,
                                      const Tensor& y, const Tensor& gate, GradWrite write) {
  const int64_t c = cuda::ChannelsPerGate(y, gate, "SigmoidGateBackward");
  cuda::CheckLike(dout, y, "SigmoidGateBackward dout");
  if (!dy.empty()) cuda::CheckLike(dy, y, "SigmoidGateBackward dy");
  if (!dlogits.empty()) cuda::CheckLike(dlogits, gate, "SigmoidGateBackward dlogits");
  if (dy.empty() && dlogits.empty()) return;
  const int64_t gates = gate.numel();
  const bool add = write == GradWrite::kAccumulate;
  DispatchFloat(y.dtype(), [&](auto t) {
    using T = decltype(t);
    DispatchFloat(gate.dtype(), [&](auto tg) {
      using TG = decltype(tg);
      if (c == 1) {
        DispatchWidth(AllAligned16(dy, dlogits, dout, y, gate), [&](auto width) {
          constexpr int W = decltype(width)::value;
          cuda::GateElementwiseBackwardKernel<W, T, TG><<<GridFor(gates / W), kBlock, 0, stream_>>>(
              PtrOrNull<T>(dy), PtrOrNull<TG>(dlogits), Ptr<T>(dout), Ptr<T>(y), Ptr<TG>(gate),
              gates, add);
        });
      } else {
        DispatchWidth(CanVectorize(c, dy, dout, y), [&](auto width) {
          constexpr int W = decltype(width)::value;
          cuda::DispatchLanes(c, W, [&](auto lanes) {
            constexpr int L = decltype(lanes)::value;
            cuda::GateGroupBackwardKernel<W, L, T, TG><<<GridFor(gates * L), kBlock, 0, stream_>>>(
                PtrOrNull<T>(dy), PtrOrNull<TG>(dlogits), Ptr<T>(dout), Ptr<T>(y), Ptr<TG>(gate),
                gates, c, add);
          });
        });
      }
    });
  });
  SL_CUDA_LAUNCH_CHECK();
}

}  // namespace sinklab

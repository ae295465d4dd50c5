// CUDA PrependRows (reference: layers/cpu/prepend_rows.cc): learned rows in front of every
// sequence (prefix sink tokens, Xiao et al. 2023; the KV-bias key/value, Sun et al. 2024).
// out [B, P + S, C] = (prefix [P, C], inp [B, S, C]) along dim 1, any dtype.
//
// Forward: a typeless copy in the widest unit (16, 8, 4, 2 or 1 bytes) that divides the row
// size and every base address; one thread per unit.
// Backward: dprefix [P, C] += sum_b dout[b, :P] with one thread per prefix element looping
// over b in order (deterministic, coalesced across threads); dinp [B, S, C] += dout[b, P:]
// elementwise in packets of kVec where the rows allow.
#include "layers/cuda/cuda_backend.h"
#include "layers/cuda/kernel_util.cuh"

namespace sinklab {
namespace cuda {
namespace {

// Units of U: per sequence, the prefix occupies units [0, prefix_units) and the input the
// rest; out holds batch * seq_units units.
template <typename U>
__global__ void PrependRowsKernel(U* out, const U* prefix, const U* inp, int64_t batch,
                                  int64_t prefix_units, int64_t seq_units) {
  const int64_t inp_units = seq_units - prefix_units;
  const int64_t total = batch * seq_units;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < total;
       i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t b = i / seq_units, offset = i - b * seq_units;
    out[i] = offset < prefix_units ? prefix[offset] : inp[b * inp_units + offset - prefix_units];
  }
}

// dprefix[e] += dout[0, e] + dout[1, e] + ... (b in order, as the CPU), e < prefix_size.
template <typename TP, typename T>
__global__ void PrefixGradKernel(TP* dprefix, const T* dout, int64_t batch,
                                 int64_t prefix_size, int64_t seq_size) {
  for (int64_t e = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; e < prefix_size;
       e += int64_t{gridDim.x} * blockDim.x) {
    float acc = ToF(dprefix[e]);
    for (int64_t b = 0; b < batch; ++b) acc += ToF(dout[b * seq_size + e]);
    dprefix[e] = FromF<TP>(acc);
  }
}

// dinp[b, s, :] += dout[b, P + s, :]; inp_size = S C, prefix_size = P C (both multiples of W).
template <int W, typename T>
__global__ void InputGradKernel(T* dinp, const T* dout, int64_t batch, int64_t prefix_size,
                                int64_t inp_size) {
  const int64_t total = batch * inp_size;
  for (int64_t i = (blockIdx.x * int64_t{blockDim.x} + threadIdx.x) * W; i < total;
       i += int64_t{gridDim.x} * blockDim.x * W) {
    const int64_t b = i / inp_size;
    const int64_t src = i + (b + 1) * prefix_size;  // b (P + S) C + P C + (i - b S C)
    float acc[W], g[W];
    LoadF<W>(dinp + i, acc);
    LoadF<W>(dout + src, g);
#pragma unroll
    for (int k = 0; k < W; ++k) acc[k] += g[k];
    StoreF<W>(dinp + i, acc);
  }
}

template <typename U>
void LaunchCopy(cudaStream_t stream, const Tensor& out, const Tensor& prefix, const Tensor& inp,
                int64_t batch, int64_t prefix_bytes, int64_t seq_bytes) {
  const int64_t prefix_units = prefix_bytes / sizeof(U), seq_units = seq_bytes / sizeof(U);
  PrependRowsKernel<U><<<GridFor(batch * seq_units), kBlock, 0, stream>>>(
      Ptr<U>(out), Ptr<const U>(prefix), Ptr<const U>(inp), batch, prefix_units, seq_units);
}

}  // namespace
}  // namespace cuda

using cuda::CanVectorize;
using cuda::DispatchFloat;
using cuda::DispatchWidth;
using cuda::GridFor;
using cuda::kBlock;
using cuda::Ptr;

void CudaBackend::PrependRows(const Tensor& out, const Tensor& prefix, const Tensor& inp) {
  SL_CHECK_MSG(out.rank() >= 2 && inp.rank() >= 2 && out.dim(0) == inp.dim(0) &&
                   out.dim(1) >= inp.dim(1) && out.dtype() == inp.dtype() &&
                   prefix.dtype() == out.dtype() && out.numel() > 0,
               absl::StrCat("PrependRows: out ", out.ShapeString(), " ", DTypeName(out.dtype()),
                            " prefix ", prefix.ShapeString(), " ", DTypeName(prefix.dtype()),
                            " inp ", inp.ShapeString(), " ", DTypeName(inp.dtype())));
  const int64_t batch = out.dim(0), seq = out.dim(1), rows = inp.dim(1);
  const int64_t prefix_rows = seq - rows, channels = out.numel() / (batch * seq);
  SL_CHECK_MSG(out.numel() == batch * seq * channels && inp.numel() == batch * rows * channels &&
                   prefix.numel() == prefix_rows * channels,
               absl::StrCat("PrependRows: out ", out.ShapeString(), " prefix ",
                            prefix.ShapeString(), " inp ", inp.ShapeString()));
  cuda::CheckCuda(out, "PrependRows out");
  cuda::CheckCuda(prefix, "PrependRows prefix");
  cuda::CheckCuda(inp, "PrependRows inp");
  const int64_t row_bytes = channels * static_cast<int64_t>(DTypeSize(out.dtype()));
  const int64_t prefix_bytes = prefix_rows * row_bytes, seq_bytes = seq * row_bytes;
  // The widest unit dividing the row size and the three base addresses.
  uintptr_t bits = static_cast<uintptr_t>(row_bytes) |
                   reinterpret_cast<uintptr_t>(out.data()) |
                   reinterpret_cast<uintptr_t>(prefix.data()) |
                   reinterpret_cast<uintptr_t>(inp.data());
  if (bits % 16 == 0) {
    cuda::LaunchCopy<uint4>(stream_, out, prefix, inp, batch, prefix_bytes, seq_bytes);
  } else if (bits % 8 == 0) {
    cuda::LaunchCopy<uint2>(stream_, out, prefix, inp, batch, prefix_bytes, seq_bytes);
  } else if (bits % 4 == 0) {
    cuda::LaunchCopy<uint32_t>(stream_, out, prefix, inp, batch, prefix_bytes, seq_bytes);
  } else if (bits % 2 == 0) {
    cuda::LaunchCopy<uint16_t>(stream_, out, prefix, inp, batch, prefix_bytes, seq_bytes);
  } else {
    cuda::LaunchCopy<uint8_t>(stream_, out, prefix, inp, batch, prefix_bytes, seq_bytes);
  }
  SL_CUDA_LAUNCH_CHECK();
}

void CudaBackend::PrependRowsBackward(const Tensor& dprefix, const Tensor& dinp,
                                      const Tensor& dout) {
  SL_CHECK_MSG(dout.rank() >= 2 && dout.numel() > 0 && (!dprefix.empty() || !dinp.empty()),
               absl::StrCat("PrependRowsBackward: dout ", dout.ShapeString(),
                            " (dprefix and dinp may not both be empty)"));
  const int64_t batch = dout.dim(0), seq = dout.dim(1);
  const int64_t channels = dout.numel() / (batch * seq);
  const int64_t prefix_rows = !dinp.empty() ? seq - dinp.dim(1) : dprefix.numel() / channels;
  const int64_t prefix_size = prefix_rows * channels, inp_size = (seq - prefix_rows) * channels;
  cuda::CheckCuda(dout, "PrependRowsBackward dout");
  DispatchFloat(dout.dtype(), [&](auto t) {
    using T = decltype(t);
    if (!dprefix.empty()) {
      SL_CHECK_MSG(dprefix.numel() == prefix_size && prefix_rows >= 0,
                   absl::StrCat("PrependRowsBackward: dprefix ", dprefix.ShapeString(),
                                " dout ", dout.ShapeString(), " prefix rows ", prefix_rows));
      cuda::CheckCuda(dprefix, "PrependRowsBackward dprefix");
      DispatchFloat(dprefix.dtype(), [&](auto tp) {
        using TP = decltype(tp);
        cuda::PrefixGradKernel<TP, T><<<GridFor(prefix_size), kBlock, 0, stream_>>>(
            Ptr<TP>(dprefix), Ptr<T>(dout), batch, prefix_size, seq * channels);
      });
      SL_CUDA_LAUNCH_CHECK();
    }
    if (!dinp.empty()) {
      SL_CHECK_MSG(dinp.dtype() == dout.dtype() && dinp.dim(0) == batch &&
                       dinp.numel() == batch * inp_size,
                   absl::StrCat("PrependRowsBackward: dinp ", dinp.ShapeString(), " ",
                                DTypeName(dinp.dtype()), " dout ", dout.ShapeString(), " ",
                                DTypeName(dout.dtype())));
      cuda::CheckCuda(dinp, "PrependRowsBackward dinp");
      // Packets never straddle a sequence: S C and P C are multiples of kVec.
      const bool vectorize =
          CanVectorize(inp_size, dinp, dout) && prefix_size % cuda::kVec == 0;
      DispatchWidth(vectorize, [&](auto width) {
        constexpr int W = decltype(width)::value;
        cuda::InputGradKernel<W, T><<<GridFor(batch * inp_size / W), kBlock, 0, stream_>>>(
            Ptr<T>(dinp), Ptr<T>(dout), batch, prefix_size, inp_size);
      });
      SL_CUDA_LAUNCH_CHECK();
    }
  });
}

}  // namespace sinklab

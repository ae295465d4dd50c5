// The narrow sigmoid gate with its projection in one pass (Backend::ProjectedGateForward /
// Backward; the default runs a GEMM and layers/cuda/gate.cu). A headwise gate has G = heads
// (12 for llama_160m): GEMMs G wide have misaligned rows (G * 2 bytes) and cuBLASLt runs them
// on slow fallback kernels (the weight gradient's alone took 0.16 ms a layer, 1.9 ms a step).
//
// Plan: weight [G, D] sits in shared memory; one warp per row, lanes on 8-element packets,
// grid-stride over rows with every SM's blocks resident.
//   Forward: z = x w^T (lane partials, then a warp sum per gate), g = sigmoid(z) stored
//     rounded (the g the backward reads), out = y * g over each gate's c channels.
//   Backward, per row: dz_h = g_h (1 - g_h) sum_{c channels} dout y (lane groups of c / 8
//     lanes, a fixed shuffle tree), dy += dout g, dx (= or +=) dz w, dz kept (f32, [rows, G]).
//     Then a second kernel writes weight-gradient partials dz^T x of kSplitRows rows each,
//     which AddWeightGradSplits adds in order (deterministic). (One kernel with a block's dz
//     in shared memory ran at 0.15 ms a layer: too few rows in flight.)
// Taken when G <= 32, D and C multiples of 8, c / 8 a power of two <= 32 or a multiple of
// 32, the weight fits in shared memory and every tensor is bf16 and 16-byte aligned.
#include <cstdlib>

#include "layers/cuda/cuda_backend.h"
#include "layers/cuda/kernel_util.cuh"

namespace sinklab {
namespace cuda {
namespace {

constexpr int kWarps = 8;       // warps (rows in flight) per block
constexpr int kSplitRows = 64;  // rows per weight-gradient partial
constexpr int kGatesPerThread = 4;  // gates a weight-gradient thread accumulates
constexpr int kMaxWeightGradThreads = 512;
constexpr int kMaxSharedBytes = 48 << 10;

struct GateDims {
  int64_t rows;
  int gates, d, c_packets, gate_packets;  // G, D, C / 8, c / 8
};

// weight [G, D] into shared memory, 16 bytes a thread at a time.
__device__ __forceinline__ void StageWeight(bf16* w, const bf16* weight, int n) {
  for (int i = threadIdx.x * kVec; i < n; i += blockDim.x * kVec) {
    *reinterpret_cast<uint4*>(w + i) = *reinterpret_cast<const uint4*>(weight + i);
  }
  __syncthreads();
}

template <int MG>
__global__ void __launch_bounds__(kWarps * 32)
    ProjectedGateForwardKernel(bf16* out, bf16* gate, const bf16* y, const bf16* x,
                               const bf16* weight, GateDims dims) {
  extern __shared__ uint4 smem[];
  bf16* w = reinterpret_cast<bf16*>(smem);
  StageWeight(w, weight, dims.gates * dims.d);
  const int lane = threadIdx.x & 31;
  const int64_t c = int64_t{dims.c_packets} * kVec;
  for (int64_t row = blockIdx.x * int64_t{kWarps} + threadIdx.x / 32; row < dims.rows;
       row += int64_t{gridDim.x} * kWarps) {
    // The first round's y packet is loaded with x's, so both are in flight together.
    float y_first[kVec];
    if (lane < dims.c_packets) LoadVec(y + row * c + lane * kVec, y_first);
    float z[MG] = {};
    for (int k = lane * kVec; k < dims.d; k += 32 * kVec) {
      float xv[kVec];
      LoadVec(x + row * dims.d + k, xv);
#pragma unroll
      for (int h = 0; h < MG; ++h) {
        if (h >= dims.gates) break;
        float wv[kVec];
        LoadVec(w + h * dims.d + k, wv);
#pragma unroll
        for (int j = 0; j < kVec; ++j) z[h] += xv[j] * wv[j];
      }
    }
    float mine = 0.0f;  // lane h's gate g_h, rounded to bf16 as stored
#pragma unroll
    for (int h = 0; h < MG; ++h) {
      if (h >= dims.gates) break;
      const float g = ToF(FromF<bf16>(Sigmoid(WarpSum(z[h]))));
      if (lane == h) mine = g;
    }
    if (lane < dims.gates) gate[row * dims.gates + lane] = FromF<bf16>(mine);
    for (int base = 0; base < dims.c_packets; base += 32) {  // convergent: the shuffle
      const int p = base + lane;
      const float g = __shfl_sync(0xffffffffu, mine, min(p / dims.gate_packets, dims.gates - 1));
      if (p >= dims.c_packets) continue;
      float v[kVec];
      if (base == 0) {
#pragma unroll
        for (int j = 0; j < kVec; ++j) v[j] = y_first[j];
      } else {
        LoadVec(y + row * c + p * kVec, v);
      }
#pragma unroll
      for (int j = 0; j < kVec; ++j) v[j] *= g;
      StoreVec(out + row * c + p * kVec, v);
    }
  }
}

// dz of one row into dz_row[G]: lane groups of gate_packets lanes (<= 32) sum a gate's packets
// in one round; wider gates sum across rounds and the warp adds them when the gate ends.
__device__ __forceinline__ void RowGateGrad(float* dz_row, bf16* dy, const bf16* dout,
                                            const bf16* y, const bf16* gate, int64_t row,
                                            const GateDims& dims) {
  const int lane = threadIdx.x & 31;
  const int64_t c = int64_t{dims.c_packets} * kVec;
  const int gp = dims.gate_packets;
  float dot = 0.0f;
  for (int base = 0; base < dims.c_packets; base += 32) {
    const int p = base + lane;
    const int h = min(p / gp, dims.gates - 1);
    const float g = ToF(gate[row * dims.gates + h]);
    if (p < dims.c_packets) {
      float d[kVec], v[kVec];
      LoadVec(dout + row * c + p * kVec, d);
      LoadVec(y + row * c + p * kVec, v);
#pragma unroll
      for (int j = 0; j < kVec; ++j) dot += d[j] * v[j];
      if (dy != nullptr) {
        float acc[kVec];
        LoadVec(dy + row * c + p * kVec, acc);
#pragma unroll
        for (int j = 0; j < kVec; ++j) acc[j] += d[j] * g;
        StoreVec(dy + row * c + p * kVec, acc);
      }
    }
    if (gp <= 32) {
      for (int o = gp / 2; o > 0; o >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, o);
      if (p < dims.c_packets && p % gp == 0) dz_row[h] = g * (1.0f - g) * dot;
      dot = 0.0f;
    } else if ((base + 32) % gp == 0) {  // the last round of gate h
      dot = WarpSum(dot);
      if (lane == 0) dz_row[h] = g * (1.0f - g) * dot;
      dot = 0.0f;
    }
  }
  __syncwarp();
}

// Per row: dz (into dz [rows, G], f32, and the warp's slot of shared memory), dy and dx.
template <int MG>
__global__ void __launch_bounds__(kWarps * 32)
    ProjectedGateRowsBackwardKernel(bf16* dy, bf16* dx, float* dz, const bf16* dout, const bf16* y,
                                    const bf16* weight, const bf16* gate, bool dx_accumulate,
                                    GateDims dims) {
  extern __shared__ uint4 smem[];
  float* dz_row = reinterpret_cast<float*>(smem) + (threadIdx.x / 32) * MG;  // [kWarps, MG]
  bf16* w = reinterpret_cast<bf16*>(reinterpret_cast<float*>(smem) + kWarps * MG);
  if (dx != nullptr) StageWeight(w, weight, dims.gates * dims.d);
  const int lane = threadIdx.x & 31;
  for (int64_t row = blockIdx.x * int64_t{kWarps} + threadIdx.x / 32; row < dims.rows;
       row += int64_t{gridDim.x} * kWarps) {
    RowGateGrad(dz_row, dy, dout, y, gate, row, dims);
    if (lane < dims.gates) dz[row * dims.gates + lane] = dz_row[lane];
    for (int k = lane * kVec; dx != nullptr && k < dims.d; k += 32 * kVec) {
      float acc[kVec] = {};
      if (dx_accumulate) LoadVec(dx + row * dims.d + k, acc);
#pragma unroll
      for (int h = 0; h < MG; ++h) {
        if (h >= dims.gates) break;
        float wv[kVec];
        LoadVec(w + h * dims.d + k, wv);
#pragma unroll
        for (int j = 0; j < kVec; ++j) acc[j] += dz_row[h] * wv[j];
      }
      StoreVec(dx + row * dims.d + k, acc);
    }
    __syncwarp();  // dz_row is the next row's
  }
}

// Weight-gradient partials: partial s = dz[rows of s]^T x[rows of s], kSplitRows rows each, a
// block per split. A thread owns a column octet and kGatesPerThread gates (32 accumulators,
// few registers, so every split's block is resident at once); the threads of one octet read
// the same x packet (L1). (A thread on 16 gates, 32-row splits: 0.076 ms a layer, H100.)
__global__ void __launch_bounds__(kMaxWeightGradThreads)
    ProjectedGateWeightGradKernel(float* partials, const float* dz, const bf16* x, GateDims dims) {
  const int octets = dims.d / kVec;
  const int tasks = octets * ((dims.gates + kGatesPerThread - 1) / kGatesPerThread);
  const int64_t first = blockIdx.x * int64_t{kSplitRows};
  const int rows = static_cast<int>(min(int64_t{kSplitRows}, dims.rows - first));
  float* part = partials + blockIdx.x * int64_t{dims.gates} * dims.d;
  for (int task = threadIdx.x; task < tasks; task += blockDim.x) {
    const int o = task % octets, g0 = task / octets * kGatesPerThread;
    float acc[kGatesPerThread][kVec] = {};
#pragma unroll 4
    for (int r = 0; r < rows; ++r) {
      float xv[kVec];
      LoadVec(x + (first + r) * dims.d + o * kVec, xv);
      const float* dz_row = dz + (first + r) * dims.gates;
#pragma unroll
      for (int h = 0; h < kGatesPerThread; ++h) {
        const float s = g0 + h < dims.gates ? dz_row[g0 + h] : 0.0f;
#pragma unroll
        for (int j = 0; j < kVec; ++j) acc[h][j] += s * xv[j];
      }
    }
#pragma unroll
    for (int h = 0; h < kGatesPerThread; ++h) {
      if (g0 + h < dims.gates) StoreVec(part + (g0 + h) * dims.d + o * kVec, acc[h]);
    }
  }
}

// Blocks of kWarps rows to keep every SM full (8 resident blocks each), fewer for few rows.
unsigned RowBlocks(int64_t rows) {
  static const int sms = [] {
    int device = 0, count = 0;
    SL_CUDA_CHECK(cudaGetDevice(&device));
    SL_CUDA_CHECK(cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, device));
    return count;
  }();
  return static_cast<unsigned>(std::min<int64_t>((rows + kWarps - 1) / kWarps, sms * 8));
}

// Max gates rounded up for the register arrays: 8, 16 or 32.
template <typename F>
void DispatchMaxGates(int gates, F&& f) {
  if (gates <= 8) return f(std::integral_constant<int, 8>());
  if (gates <= 16) return f(std::integral_constant<int, 16>());
  f(std::integral_constant<int, 32>());
}

// The fused path's dims, or rows = -1 where it does not apply (see the file comment).
GateDims FusedGateDims(const Tensor& y, const Tensor& x, const Tensor& weight,
                       std::initializer_list<const Tensor*> all) {
  GateDims dims{-1, 0, 0, 0, 0};
  // TEMPORARY (benchmark A/B only): SINKLAB_FUSED_GATE=0 runs the GEMM path.
  const char* fused = std::getenv("SINKLAB_FUSED_GATE");
  if (fused != nullptr && fused[0] == '0') return dims;
  if (weight.rank() != 2 || x.rank() < 1 || x.numel() == 0) return dims;
  const int64_t g = weight.dim(0), d = weight.dim(1);
  if (x.dim(-1) != d || g > 32 || d % kVec != 0) return dims;
  const int64_t rows = x.numel() / d;
  if (y.numel() % rows != 0) return dims;
  const int64_t c = y.numel() / rows;
  if (c % (g * kVec) != 0) return dims;
  const int64_t gp = c / (g * kVec);
  const bool gp_ok = gp <= 32 ? (gp & (gp - 1)) == 0 : gp % 32 == 0;
  if (!gp_ok || g * d * 2 + kWarps * 32 * 4 > kMaxSharedBytes) return dims;
  for (const Tensor* t : all) {
    if (!t->empty() && (t->dtype() != DType::kBF16 || !Aligned16(*t))) return dims;
  }
  return GateDims{rows, static_cast<int>(g), static_cast<int>(d), static_cast<int>(c / kVec),
                  static_cast<int>(gp)};
}

}  // namespace
}  // namespace cuda

void CudaBackend::ProjectedGateForward(const Tensor& out, const Tensor& gate, const Tensor& y,
                                       const Tensor& x, const Tensor& weight) {
  const cuda::GateDims dims = cuda::FusedGateDims(y, x, weight, {&out, &gate, &y, &x, &weight});
  if (dims.rows < 0) return Backend::ProjectedGateForward(out, gate, y, x, weight);
  cuda::CheckLike(out, y, "ProjectedGateForward out");
  SL_CHECK_MSG(gate.numel() == dims.rows * dims.gates,
               absl::StrCat("ProjectedGateForward: gate ", gate.ShapeString(), " for ",
                            dims.rows, " rows of ", dims.gates, " gates"));
  cuda::DispatchMaxGates(dims.gates, [&](auto mg) {
    constexpr int MG = decltype(mg)::value;
    // A warp per row, grid-stride (each block stages the weight once).
    cuda::ProjectedGateForwardKernel<MG>
        <<<cuda::RowBlocks(dims.rows), cuda::kWarps * 32, dims.gates * dims.d * 2, stream_>>>(
            cuda::Ptr<cuda::bf16>(out), cuda::Ptr<cuda::bf16>(gate), cuda::Ptr<cuda::bf16>(y),
            cuda::Ptr<cuda::bf16>(x), cuda::Ptr<cuda::bf16>(weight), dims);
  });
  SL_CUDA_LAUNCH_CHECK();
}

void CudaBackend::ProjectedGateBackward(const Tensor& dy, const Tensor& dx, const Tensor& dweight,
                                        const Tensor& dlogits, const Tensor& dout,
                                        const Tensor& y, const Tensor& x, const Tensor& weight,
                                        const Tensor& gate, GradWrite dx_write) {
  const cuda::GateDims dims =
      cuda::FusedGateDims(y, x, weight, {&dy, &dx, &dout, &y, &x, &weight, &gate});
  if (dims.rows < 0) {
    return Backend::ProjectedGateBackward(dy, dx, dweight, dlogits, dout, y, x, weight, gate,
                                          dx_write);
  }
  cuda::CheckLike(dout, y, "ProjectedGateBackward dout");
  if (!dy.empty()) cuda::CheckLike(dy, y, "ProjectedGateBackward dy");
  if (!dx.empty()) cuda::CheckLike(dx, x, "ProjectedGateBackward dx");
  SL_CHECK_MSG(dweight.numel() == weight.numel() && dweight.dtype() == DType::kF32 &&
                   gate.numel() == dims.rows * dims.gates,
               absl::StrCat("ProjectedGateBackward: dweight ", dweight.ShapeString(), " ",
                            DTypeName(dweight.dtype()), " (f32 ", weight.ShapeString(),
                            " expected), gate ", gate.ShapeString()));
  cuda::CheckCuda(dweight, "ProjectedGateBackward dweight");
  const int64_t splits = (dims.rows + cuda::kSplitRows - 1) / cuda::kSplitRows;
  const int64_t dz_bytes = (dims.rows * dims.gates * 4 + 255) / 256 * 256;
  char* scratch = static_cast<char*>(Workspace(dz_bytes + splits * dims.gates * dims.d * 4));
  float* dz = reinterpret_cast<float*>(scratch);
  float* partials = reinterpret_cast<float*>(scratch + dz_bytes);
  cuda::DispatchMaxGates(dims.gates, [&](auto mg) {
    constexpr int MG = decltype(mg)::value;
    const int smem = cuda::kWarps * MG * 4 + (dx.empty() ? 0 : dims.gates * dims.d * 2);
    cuda::ProjectedGateRowsBackwardKernel<MG>
        <<<cuda::RowBlocks(dims.rows), cuda::kWarps * 32, smem, stream_>>>(
            cuda::PtrOrNull<cuda::bf16>(dy), cuda::PtrOrNull<cuda::bf16>(dx), dz,
            cuda::Ptr<cuda::bf16>(dout), cuda::Ptr<cuda::bf16>(y), cuda::Ptr<cuda::bf16>(weight),
            cuda::Ptr<cuda::bf16>(gate), dx_write == GradWrite::kAccumulate, dims);
  });
  SL_CUDA_LAUNCH_CHECK();
  // A thread per (octet, gate group), rounded up to whole warps.
  const int tasks =
      dims.d / cuda::kVec * ((dims.gates + cuda::kGatesPerThread - 1) / cuda::kGatesPerThread);
  const int threads = std::min(cuda::kMaxWeightGradThreads, (tasks + 31) / 32 * 32);
  cuda::ProjectedGateWeightGradKernel<<<static_cast<unsigned>(splits), threads, 0, stream_>>>(
      partials, dz, cuda::Ptr<cuda::bf16>(x), dims);
  SL_CUDA_LAUNCH_CHECK();
  AddWeightGradSplits(dweight, partials, splits);
}

}  // namespace sinklab

// CUDA RMSNorm (Zhang & Sennrich 2019; reference: layers/cpu/rmsnorm.cc):
// y = x * rstd * w, rstd = 1 / sqrt(mean_j x_j^2 + eps). Per row with r = rstd:
//   dx_j (= or +=) r w_j dy_j - x_j r^3 / D * sum_k dy_k w_k x_k,    dw_j += sum_rows dy_j x_j r.
//
// Tiling plan:
// - Forward and dinp: a group of L lanes per row (L = 32 for wide rows; fewer for short rows
//   such as QK-norm's d_h = 64, where 8 lanes of 8-channel packets cover a row and a warp
//   takes 4 rows: a warp per row left 3/4 of its lanes idle). Lanes take packets of W
//   channels (16-byte loads of bf16 when the row allows), a group sum gives the row's
//   statistic, then a second pass over the row (L1/L2-resident) writes. rstd is fp32.
// - dinp and dweight together (the training case, D = P L W with P <= 4, 16-byte rows): the
//   dinp kernel also keeps each lane's sum of dy x r for its columns across the rows it
//   visits, and each block writes the sum of its row groups as one partial row; the
//   partials are added in block order. x and dy are read once for both gradients.
// - dweight alone, deterministic without atomics: block (32 channels) x (kRowLanes row lanes);
//   a block owns 32 channels of a contiguous split of the rows, each thread sums its rows in
//   order, and a fixed shared-memory tree adds the row lanes. With one split the block adds
//   into dweight directly; with several (to fill the GPU when D is small, e.g. QK-norm with
//   D = d_h) the splits write partials to the backend's scratch and a second kernel adds
//   them in split order.
#include <algorithm>

#include "layers/cuda/cuda_backend.h"
#include "layers/cuda/kernel_util.cuh"

namespace sinklab {
namespace cuda {
namespace {

constexpr int kRowLanes = 16;           // dweight: row lanes per block (x 32 channels)
constexpr int kWeightGradBlocks = 528;  // dweight: ~4 blocks of 512 threads per SM

template <int W, int L, typename T, typename TW>
__global__ void RmsNormForwardKernel(T* out, float* rstd, const T* inp, const TW* weight,
                                     int64_t rows, int64_t dim, float eps) {
  ForEachRowGroup<L>(rows, [&](int64_t row, int lane, bool active) {
    const T* x = inp + row * dim;
    float sum_sq = 0.0f;
    for (int64_t col = lane * W; active && col < dim; col += L * W) {
      float v[W];
      LoadF<W>(x + col, v);
#pragma unroll
      for (int k = 0; k < W; ++k) sum_sq += v[k] * v[k];
    }
    const float r = rsqrtf(GroupSum<L>(sum_sq) / static_cast<float>(dim) + eps);
    if (!active) return;
    if (lane == 0) rstd[row] = r;
    for (int64_t col = lane * W; col < dim; col += L * W) {
      float v[W], w[W];
      LoadF<W>(x + col, v);
      LoadF<W>(weight + col, w);
#pragma unroll
      for (int k = 0; k < W; ++k) v[k] = v[k] * r * w[k];
      StoreF<W>(out + row * dim + col, v);
    }
  });
}

template <int W, int L, bool kAccumulate, typename T, typename TW>
__global__ void RmsNormInputGradKernel(T* dinp, const T* dout, const T* inp, const TW* weight,
                                       const float* rstd, int64_t rows, int64_t dim) {
  ForEachRowGroup<L>(rows, [&](int64_t row, int lane, bool active) {
    const T* x = inp + row * dim;
    const T* dy = dout + row * dim;
    float dot = 0.0f;  // sum_k dy_k w_k x_k
    for (int64_t col = lane * W; active && col < dim; col += L * W) {
      float xv[W], gv[W], wv[W];
      LoadF<W>(x + col, xv);
      LoadF<W>(dy + col, gv);
      LoadF<W>(weight + col, wv);
#pragma unroll
      for (int k = 0; k < W; ++k) dot += gv[k] * wv[k] * xv[k];
    }
    dot = GroupSum<L>(dot);
    if (!active) return;
    const float r = rstd[row];
    const float coef = dot * r * r * r / static_cast<float>(dim);
    for (int64_t col = lane * W; col < dim; col += L * W) {
      float xv[W], gv[W], wv[W], dx[W] = {};
      LoadF<W>(x + col, xv);
      LoadF<W>(dy + col, gv);
      LoadF<W>(weight + col, wv);
      if constexpr (kAccumulate) LoadF<W>(dinp + row * dim + col, dx);
#pragma unroll
      for (int k = 0; k < W; ++k) dx[k] += r * wv[k] * gv[k] - coef * xv[k];
      StoreF<W>(dinp + row * dim + col, dx);
    }
  });
}

// dinp as RmsNormInputGradKernel, and this block's share of dweight in the same pass: a lane
// visits the same P packets of columns (lane W + p L W) in every row it takes, so it keeps
// their sum of dy x r in registers; the block's row groups are then added in a fixed order
// through shared memory into partials[blockIdx.x, :] (AddSplitsKernel sums the blocks).
// Needs dim == P L W exactly and blockDim.x == kBlock.
template <int W, int L, int P, bool kAccumulate, typename T, typename TW>
__global__ void __launch_bounds__(kBlock)
    RmsNormBackwardFusedKernel(T* dinp, float* partials, const T* dout, const T* inp,
                               const TW* weight, const float* rstd, int64_t rows, int64_t dim) {
  constexpr int kGroups = kBlock / L;
  __shared__ float group_sums[kGroups][P * L * W];
  float dw[P][W] = {};
  ForEachRowGroup<L>(rows, [&](int64_t row, int lane, bool active) {
    const T* x = inp + row * dim;
    const T* dy = dout + row * dim;
    float xv[P][W], gv[P][W], wv[P][W];
    float dot = 0.0f;  // sum_k dy_k w_k x_k
#pragma unroll
    for (int p = 0; p < P; ++p) {
      const int64_t col = (p * L + lane) * W;
      if (active) {
        LoadF<W>(x + col, xv[p]);
        LoadF<W>(dy + col, gv[p]);
      }
      LoadF<W>(weight + col, wv[p]);
#pragma unroll
      for (int k = 0; k < W; ++k) dot += active ? gv[p][k] * wv[p][k] * xv[p][k] : 0.0f;
    }
    dot = GroupSum<L>(dot);
    if (!active) return;
    const float r = rstd[row];
    const float coef = dot * r * r * r / static_cast<float>(dim);
#pragma unroll
    for (int p = 0; p < P; ++p) {
      const int64_t col = (p * L + lane) * W;
      float dx[W] = {};
      if constexpr (kAccumulate) LoadF<W>(dinp + row * dim + col, dx);
#pragma unroll
      for (int k = 0; k < W; ++k) {
        dx[k] += r * wv[p][k] * gv[p][k] - coef * xv[p][k];
        dw[p][k] += gv[p][k] * xv[p][k] * r;
      }
      StoreF<W>(dinp + row * dim + col, dx);
    }
  });
  // Every thread stores (threads whose rows ran out keep dw = 0).
  const int my_lane = (threadIdx.x & 31) % L, group = threadIdx.x / L;
#pragma unroll
  for (int p = 0; p < P; ++p) {
#pragma unroll
    for (int k = 0; k < W; ++k) group_sums[group][(p * L + my_lane) * W + k] = dw[p][k];
  }
  __syncthreads();
  for (int col = threadIdx.x; col < P * L * W; col += kBlock) {
    float sum = 0.0f;
    for (int g = 0; g < kGroups; ++g) sum += group_sums[g][col];
    partials[blockIdx.x * dim + col] = sum;
  }
}

// The sum over the kRowLanes lanes (threadIdx.y) of a (32, kRowLanes) block of each channel
// lane's (threadIdx.x) value, by a fixed shared-memory tree (deterministic); valid in lane
// y == 0. Every thread of the block must call it.
__device__ float SumRowLanes(float value) {
  __shared__ float lanes[kRowLanes][33];
  lanes[threadIdx.y][threadIdx.x] = value;
  __syncthreads();
#pragma unroll
  for (int half = kRowLanes / 2; half > 0; half /= 2) {
    if (threadIdx.y < half) {
      lanes[threadIdx.y][threadIdx.x] += lanes[threadIdx.y + half][threadIdx.x];
    }
    __syncthreads();
  }
  return lanes[0][threadIdx.x];
}

// Block (32, kRowLanes) sums dy x r over rows [split begin, split end) for 32 channels.
// dst: dweight (+=) when `accumulate`, else the split's partial row dst[split, :] (=).
template <typename T>
__global__ void __launch_bounds__(32 * kRowLanes)
    RmsNormWeightGradKernel(float* dst, bool accumulate, const T* dout, const T* inp,
                            const float* rstd, int64_t rows, int64_t dim, int64_t rows_per_split) {
  const int64_t col = blockIdx.x * int64_t{32} + threadIdx.x;
  const int64_t begin = blockIdx.y * rows_per_split;
  const int64_t end = min(begin + rows_per_split, rows);
  float acc = 0.0f;
  if (col < dim) {
#pragma unroll 4
    for (int64_t row = begin + threadIdx.y; row < end; row += kRowLanes) {
      acc += ToF(dout[row * dim + col]) * ToF(inp[row * dim + col]) * rstd[row];
    }
  }
  const float sum = SumRowLanes(acc);
  if (threadIdx.y == 0 && col < dim) {
    if (accumulate) {
      dst[col] += sum;
    } else {
      dst[blockIdx.y * dim + col] = sum;
    }
  }
}

// dweight[c] += sum over splits s of partials[s, c]: block (32, kRowLanes) owns 32
// channels; lane y sums splits y, y + kRowLanes, ... in order, then a fixed shared-memory tree
// adds the lanes (deterministic; hundreds of splits stay parallel).
__global__ void __launch_bounds__(32 * kRowLanes)
    AddSplitsKernel(float* dweight, const float* partials, int splits, int64_t dim) {
  const int64_t col = blockIdx.x * int64_t{32} + threadIdx.x;
  float acc = 0.0f;
  if (col < dim) {
    for (int s = threadIdx.y; s < splits; s += kRowLanes) acc += partials[s * dim + col];
  }
  const float sum = SumRowLanes(acc);
  if (threadIdx.y == 0 && col < dim) dweight[col] += sum;
}

// Rows and width after checking inp [N, D] (any rank, last dim D) against weight [D].
int64_t CheckRows(const Tensor& inp, const Tensor& weight, const Tensor& rstd, const char* what) {
  const int64_t dim = weight.numel();
  SL_CHECK_MSG(dim > 0 && inp.rank() >= 1 && inp.dim(-1) == dim &&
                   rstd.numel() == inp.numel() / dim && rstd.dtype() == DType::kF32,
               absl::StrCat(what, ": inp ", inp.ShapeString(), " weight ", weight.ShapeString(),
                            " rstd ", rstd.ShapeString(), " ", DTypeName(rstd.dtype())));
  CheckCuda(inp, what);
  CheckCuda(weight, what);
  CheckCuda(rstd, what);
  return inp.numel() / dim;
}

}  // namespace
}  // namespace cuda

using cuda::CanVectorize;
using cuda::DispatchFloat;
using cuda::DispatchWidth;
using cuda::GridFor;
using cuda::Ptr;

void CudaBackend::RmsNormForward(const Tensor& out, const Tensor& rstd, const Tensor& inp,
                                 const Tensor& weight, float eps) {
  const int64_t rows = cuda::CheckRows(inp, weight, rstd, "RmsNormForward");
  cuda::CheckLike(out, inp, "RmsNormForward out");
  const int64_t dim = weight.numel();
  DispatchFloat(inp.dtype(), [&](auto t) {
    using T = decltype(t);
    DispatchFloat(weight.dtype(), [&](auto tw) {
      using TW = decltype(tw);
      DispatchWidth(CanVectorize(dim, out, inp, weight), [&](auto width) {
        constexpr int W = decltype(width)::value;
        cuda::DispatchLanes(dim, W, [&](auto lanes) {
          constexpr int L = decltype(lanes)::value;
          cuda::RmsNormForwardKernel<W, L, T, TW><<<GridFor(rows * L), cuda::kBlock, 0, stream_>>>(
              Ptr<T>(out), rstd.f32(), Ptr<T>(inp), Ptr<TW>(weight), rows, dim, eps);
        });
      });
    });
  });
  SL_CUDA_LAUNCH_CHECK();
}

void CudaBackend::RmsNormBackward(const Tensor& dinp, const Tensor& dweight, const Tensor& dout,
                                  const Tensor& inp, const Tensor& weight, const Tensor& rstd,
                                  GradWrite dinp_write) {
  const int64_t rows = cuda::CheckRows(inp, weight, rstd, "RmsNormBackward");
  cuda::CheckLike(dout, inp, "RmsNormBackward dout");
  if (rows == 0) return;
  if (!dinp.empty()) cuda::CheckLike(dinp, inp, "RmsNormBackward dinp");
  if (!dweight.empty()) {
    SL_CHECK_MSG(dweight.numel() == weight.numel() && dweight.dtype() == DType::kF32,
                 absl::StrCat("RmsNormBackward: dweight ", dweight.ShapeString(), " ",
                              DTypeName(dweight.dtype()), ", want [", weight.numel(), "] f32"));
    cuda::CheckCuda(dweight, "RmsNormBackward dweight");
  }
  if (!dinp.empty() && !dweight.empty() &&
      RmsNormBackwardFused(dinp, dweight, dout, inp, weight, rstd, dinp_write)) {
    return;
  }
  if (!dinp.empty()) RmsNormInputGrad(dinp, dout, inp, weight, rstd, dinp_write);
  if (!dweight.empty()) RmsNormWeightGrad(dweight, dout, inp, rstd);
}

void CudaBackend::RmsNormInputGrad(const Tensor& dinp, const Tensor& dout, const Tensor& inp,
                                   const Tensor& weight, const Tensor& rstd, GradWrite dinp_write) {
  const int64_t rows = rstd.numel(), dim = weight.numel();
  DispatchFloat(inp.dtype(), [&](auto t) {
    using T = decltype(t);
    DispatchFloat(weight.dtype(), [&](auto tw) {
      using TW = decltype(tw);
      DispatchWidth(CanVectorize(dim, dinp, dout, inp, weight), [&](auto width) {
        constexpr int W = decltype(width)::value;
        cuda::DispatchLanes(dim, W, [&](auto lanes) {
          constexpr int L = decltype(lanes)::value;
          const auto launch = [&](auto kernel) {
            kernel<<<GridFor(rows * L), cuda::kBlock, 0, stream_>>>(
                Ptr<T>(dinp), Ptr<T>(dout), Ptr<T>(inp), Ptr<TW>(weight), rstd.f32(), rows, dim);
          };
          if (dinp_write == GradWrite::kAccumulate) {
            launch(cuda::RmsNormInputGradKernel<W, L, true, T, TW>);
          } else {
            launch(cuda::RmsNormInputGradKernel<W, L, false, T, TW>);
          }
        });
      });
    });
  });
  SL_CUDA_LAUNCH_CHECK();
}

void CudaBackend::RmsNormWeightGrad(const Tensor& dweight, const Tensor& dout, const Tensor& inp,
                                    const Tensor& rstd) {
  const int64_t rows = rstd.numel(), dim = dweight.numel();
  // Splits: enough blocks to fill the GPU, at least 64 rows each; their partial rows
  // [splits, dim] live in the workspace and are summed in split order (deterministic).
  const int64_t tiles = (dim + 31) / 32;
  const int64_t splits = std::max<int64_t>(
      1, std::min((cuda::kWeightGradBlocks + tiles - 1) / tiles, (rows + 63) / 64));
  const int64_t rows_per_split = (rows + splits - 1) / splits;
  const bool direct = splits == 1;
  float* partials = direct ? nullptr : static_cast<float*>(Workspace(splits * dim * sizeof(float)));
  const dim3 grid(static_cast<unsigned>(tiles), static_cast<unsigned>(splits));
  DispatchFloat(inp.dtype(), [&](auto t) {
    using T = decltype(t);
    cuda::RmsNormWeightGradKernel<T><<<grid, dim3(32, cuda::kRowLanes), 0, stream_>>>(
        direct ? dweight.f32() : partials, direct, Ptr<T>(dout), Ptr<T>(inp), rstd.f32(), rows, dim,
        rows_per_split);
  });
  SL_CUDA_LAUNCH_CHECK();
  if (!direct) AddRmsNormSplits(dweight, partials, splits);
}

void CudaBackend::AddRmsNormSplits(const Tensor& dweight, const float* partials, int64_t splits) {
  const int64_t dim = dweight.numel();
  cuda::AddSplitsKernel<<<static_cast<unsigned>((dim + 31) / 32), dim3(32, cuda::kRowLanes), 0,
                          stream_>>>(dweight.f32(), partials, static_cast<int>(splits), dim);
  SL_CUDA_LAUNCH_CHECK();
}

bool CudaBackend::RmsNormBackwardFused(const Tensor& dinp, const Tensor& dweight,
                                       const Tensor& dout, const Tensor& inp, const Tensor& weight,
                                       const Tensor& rstd, GradWrite dinp_write) {
  const int64_t rows = rstd.numel(), dim = weight.numel();
  constexpr int W = cuda::kVec;
  if (!CanVectorize(dim, dinp, dout, inp, weight)) return false;
  bool launched = false;
  DispatchFloat(inp.dtype(), [&](auto t) {
    using T = decltype(t);
    DispatchFloat(weight.dtype(), [&](auto tw) {
      using TW = decltype(tw);
      cuda::DispatchLanes(dim, W, [&](auto lanes) {
        constexpr int L = decltype(lanes)::value;
        const int64_t packets = dim / (L * W);
        if (dim % (L * W) != 0 || packets < 1 || packets > 4) return;
        // At most kWeightGradBlocks blocks (grid-stride rows): few partial rows to add.
        const int64_t blocks = std::min<int64_t>(GridFor(rows * L), cuda::kWeightGradBlocks);
        float* partials = static_cast<float*>(Workspace(blocks * dim * sizeof(float)));
        const auto launch = [&](auto packets_c) {
          constexpr int P = decltype(packets_c)::value;
          const auto go = [&](auto kernel) {
            kernel<<<static_cast<unsigned>(blocks), cuda::kBlock, 0, stream_>>>(
                Ptr<T>(dinp), partials, Ptr<T>(dout), Ptr<T>(inp), Ptr<TW>(weight), rstd.f32(),
                rows, dim);
          };
          if (dinp_write == GradWrite::kAccumulate) {
            go(cuda::RmsNormBackwardFusedKernel<W, L, P, true, T, TW>);
          } else {
            go(cuda::RmsNormBackwardFusedKernel<W, L, P, false, T, TW>);
          }
        };
        switch (packets) {
          case 1:
            launch(std::integral_constant<int, 1>{});
            break;
          case 2:
            launch(std::integral_constant<int, 2>{});
            break;
          case 3:
            launch(std::integral_constant<int, 3>{});
            break;
          default:
            launch(std::integral_constant<int, 4>{});
            break;
        }
        SL_CUDA_LAUNCH_CHECK();
        AddRmsNormSplits(dweight, partials, blocks);
        launched = true;
      });
    });
  });
  return launched;
}

}  // namespace sinklab

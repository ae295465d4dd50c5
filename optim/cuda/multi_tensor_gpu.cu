#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/cuda_check.h"
#include "layers/cuda/kernel_util.cuh"
#include "optim/cuda/multi_tensor_gpu.h"
#include "optim/cuda/newton_schulz_gpu.h"
#include "optim/newton_schulz.h"

namespace sinklab {
namespace cuda_optim {
namespace {

using cuda::bf16;
using cuda::kBlock;

// The grad of one tensor of the norm.
struct GradRef {
  const float* g;
  int64_t numel;
};

// The operands of one AdamW tensor; compute is null when there is no separate copy.
struct AdamWRef {
  float* p;
  const float* g;
  float* m;
  float* v;
  bf16* compute;
  int64_t numel;
  float weight_decay;
};

// One Muon matrix of a group, stored [rows, cols]; transposed: tall, oriented [cols, rows].
struct MuonRef {
  const float* g;
  float* m;
  float* p;
  bf16* compute;
  int32_t rows, cols;
  int32_t transposed;
  float weight_decay;
  float scale;
};

// A device copy of `values` from `arena` (construction time only).
template <typename T>
Tensor Upload(const std::vector<T>& values, Arena* arena) {
  const int64_t words = static_cast<int64_t>((sizeof(T) * values.size() + 3) / 4);
  Tensor t = arena->Allocate(DType::kU32, {std::max<int64_t>(words, 1)});
  if (!values.empty()) {
    SL_CUDA_CHECK(
        cudaMemcpy(t.data(), values.data(), sizeof(T) * values.size(), cudaMemcpyHostToDevice));
  }
  return t;
}

// `count` doubles (zero) from `arena`.
Tensor DoubleBuffer(int64_t count, Arena* arena) {
  return arena->Allocate(DType::kU32, {2 * std::max<int64_t>(count, 1)});
}

template <typename T>
T* As(const Tensor& t) {
  return static_cast<T*>(t.data());
}

void CheckCudaF32(const Tensor& t, const std::string& what) {
  SL_CHECK_MSG(t.device() == Device::kCuda && t.dtype() == DType::kF32,
               absl::StrCat(what, " must be an fp32 CUDA tensor"));
}

// Block sum of `acc` into partials[blockIdx.x] (deterministic: a fixed tree).
__device__ void WriteBlockPartial(double acc, double* partials) {
  __shared__ double shared[32];
  acc = cuda::BlockSum(acc, shared);
  if (threadIdx.x == 0) partials[blockIdx.x] = acc;
}

// out[r] = sum of partials[begin[r], begin[r + 1]) in a fixed order; one block per range.
__global__ void ReduceRangesKernel(const double* partials, const int32_t* begin, double* out) {
  __shared__ double shared[32];
  const int r = blockIdx.x;
  double acc = 0;
  for (int i = begin[r] + threadIdx.x; i < begin[r + 1]; i += blockDim.x) acc += partials[i];
  acc = cuda::BlockSum(acc, shared);
  if (threadIdx.x == 0) out[r] = acc;
}

__global__ void GradSumSquaresKernel(const GradRef* tensors, const ChunkRef* chunks,
                                     double* partials) {
  const ChunkRef c = chunks[blockIdx.x];
  const GradRef t = tensors[c.tensor];
  const int64_t begin = int64_t{c.chunk} * kChunkElements;
  const int64_t end = min(begin + kChunkElements, t.numel);
  double acc = 0;
  for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) {
    const double v = t.g[i];
    acc += v * v;
  }
  WriteBlockPartial(acc, partials);
}

// One block: the norm = sqrt(sum of partials[0, n) in order) as a float (std::sqrt's
// rounding: both are IEEE); factor as ClipGradNorm computes it.
__global__ void TotalAndClipFactorKernel(const double* partials, int n, float max_norm,
                                         float* norm_out, float* factor) {
  __shared__ double shared[32];
  double acc = 0;
  for (int i = threadIdx.x; i < n; i += blockDim.x) acc += partials[i];
  acc = cuda::BlockSum(acc, shared);
  if (threadIdx.x == 0) {
    const float norm = static_cast<float>(sqrt(acc));
    *norm_out = norm;
    const bool clip = max_norm > 0.0f && isfinite(norm) && norm > max_norm;
    *factor = clip ? static_cast<float>(static_cast<double>(max_norm) / (norm + 1e-6)) : 1.0f;
  }
}

// One element of AdamW (the CPU's operation order, so the same bits); returns p's change,
// in double as the update statistics take it.
__device__ __forceinline__ double AdamWElement(float& p, float g, float& m, float& v, float beta1,
                                               float beta2, float eps, float step_size,
                                               float bc2_sqrt, float decay) {
  const float m_new = beta1 * m + (1.0f - beta1) * g;
  const float v_new = beta2 * v + (1.0f - beta2) * g * g;
  m = m_new;
  v = v_new;
  const float denom = sqrtf(v_new) / bc2_sqrt + eps;
  const float old = p;
  p = old * decay - step_size * (m_new / denom);
  return static_cast<double>(p) - old;
}

// A chunk of one tensor. Where p, g, m, v are 16-byte aligned and compute 8-byte aligned
// (arena tensors are), threads move 4 elements at a time (float4 loads and stores: ~25% less
// time than scalar accesses on an H100); the chunk's tail and unaligned tensors go scalar.
template <bool kRecord>
__global__ void AdamWChunkKernel(const AdamWRef* tensors, const ChunkRef* chunks, float beta1,
                                 float beta2, float eps, float lr, float step_size, float bc2_sqrt,
                                 const float* grad_scale, double* partials) {
  const ChunkRef c = chunks[blockIdx.x];
  const AdamWRef t = tensors[c.tensor];
  const int64_t begin = int64_t{c.chunk} * kChunkElements;
  const int64_t end = min(begin + kChunkElements, t.numel);
  const bool scaled = grad_scale != nullptr;
  const float scale = scaled ? *grad_scale : 1.0f;
  const float decay = __fsub_rn(1.0f, __fmul_rn(lr, t.weight_decay));  // 1 - lr wd, as the CPU
  const auto grad = [&](float g) { return scaled ? __fmul_rn(g, scale) : g; };
  double acc = 0;
  const bool vectorized = ((reinterpret_cast<uintptr_t>(t.p) | reinterpret_cast<uintptr_t>(t.g) |
                            reinterpret_cast<uintptr_t>(t.m) | reinterpret_cast<uintptr_t>(t.v)) %
                               16 ==
                           0) &&
                          reinterpret_cast<uintptr_t>(t.compute) % 8 == 0 && begin % 4 == 0;
  const int64_t vector_end = vectorized ? begin + (end - begin) / 4 * 4 : begin;
  for (int64_t i = begin + 4 * threadIdx.x; i < vector_end; i += 4 * blockDim.x) {
    float4 p = *reinterpret_cast<const float4*>(t.p + i);
    const float4 g = *reinterpret_cast<const float4*>(t.g + i);
    float4 m = *reinterpret_cast<const float4*>(t.m + i);
    float4 v = *reinterpret_cast<const float4*>(t.v + i);
    double d[4];
    d[0] = AdamWElement(p.x, grad(g.x), m.x, v.x, beta1, beta2, eps, step_size, bc2_sqrt, decay);
    d[1] = AdamWElement(p.y, grad(g.y), m.y, v.y, beta1, beta2, eps, step_size, bc2_sqrt, decay);
    d[2] = AdamWElement(p.z, grad(g.z), m.z, v.z, beta1, beta2, eps, step_size, bc2_sqrt, decay);
    d[3] = AdamWElement(p.w, grad(g.w), m.w, v.w, beta1, beta2, eps, step_size, bc2_sqrt, decay);
    *reinterpret_cast<float4*>(t.p + i) = p;
    *reinterpret_cast<float4*>(t.m + i) = m;
    *reinterpret_cast<float4*>(t.v + i) = v;
    if (t.compute != nullptr) {
      __nv_bfloat162 lo = __floats2bfloat162_rn(p.x, p.y), hi = __floats2bfloat162_rn(p.z, p.w);
      uint2 packed;
      packed.x = *reinterpret_cast<uint32_t*>(&lo);
      packed.y = *reinterpret_cast<uint32_t*>(&hi);
      *reinterpret_cast<uint2*>(t.compute + i) = packed;
    }
    if (kRecord) {
#pragma unroll
      for (int k = 0; k < 4; ++k) acc += d[k] * d[k];
    }
  }
  for (int64_t i = vector_end + threadIdx.x; i < end; i += blockDim.x) {
    float p = t.p[i], m = t.m[i], v = t.v[i];
    const double d =
        AdamWElement(p, grad(t.g[i]), m, v, beta1, beta2, eps, step_size, bc2_sqrt, decay);
    t.p[i] = p;
    t.m[i] = m;
    t.v[i] = v;
    if (t.compute != nullptr) t.compute[i] = __float2bfloat16_rn(p);
    if (kRecord) acc += d * d;
  }
  if (kRecord) WriteBlockPartial(acc, partials);
}

// Tile kernels: 256 threads as 8 rows of 32 lanes over a kTileDim x kTileDim tile.
constexpr int kTileRowsPerPass = kBlock / kTileDim;
static_assert(kBlock % kTileDim == 0, "tile rows");

// Momentum and Nesterov look-ahead of one tile; u goes to x (the group's oriented [B, n, m]
// batch; a tall matrix transposed through shared memory) and sum u^2 (fp32 u, as the CPU
// norm) to partials[tile].
__global__ void MuonMomentumTileKernel(const MuonRef* mats, const TileRef* tiles, bf16* x,
                                       int64_t matrix_numel, float beta, bool nesterov,
                                       const float* grad_scale, double* partials) {
  __shared__ float tile_u[kTileDim][kTileDim + 1];
  const TileRef tile = tiles[blockIdx.x];
  const MuonRef mat = mats[tile.matrix];
  bf16* out = x + tile.matrix * matrix_numel;
  const int lane = threadIdx.x % kTileDim, row0 = threadIdx.x / kTileDim;
  const int64_t r0 = int64_t{tile.tile_row} * kTileDim, c0 = int64_t{tile.tile_col} * kTileDim;
  const bool scaled = grad_scale != nullptr;
  const float scale = scaled ? *grad_scale : 1.0f;
  double acc = 0;
  for (int k = row0; k < kTileDim; k += kTileRowsPerPass) {
    const int64_t r = r0 + k, c = c0 + lane;
    if (r < mat.rows && c < mat.cols) {
      const int64_t i = r * mat.cols + c;
      const float g = scaled ? __fmul_rn(mat.g[i], scale) : mat.g[i];
      const float m_new = beta * mat.m[i] + (1.0f - beta) * g;
      mat.m[i] = m_new;
      const float u = nesterov ? (1.0f - beta) * g + beta * m_new : m_new;
      acc += static_cast<double>(u) * u;
      if (mat.transposed) {
        tile_u[k][lane] = u;
      } else {
        out[i] = __float2bfloat16_rn(u);
      }
    }
  }
  if (mat.transposed) {  // uniform per block: one matrix per tile
    __syncthreads();
    // Oriented [cols, rows]: element (c, r) = u(r, c); lanes walk r for coalesced stores.
    for (int k = row0; k < kTileDim; k += kTileRowsPerPass) {
      const int64_t c = c0 + k, r = r0 + lane;
      if (r < mat.rows && c < mat.cols) {
        out[c * mat.rows + r] = __float2bfloat16_rn(tile_u[lane][k]);
      }
    }
  }
  WriteBlockPartial(acc, partials);
}

// x[b] *= 1 / (sqrt(sums[b]) + eps) over a [B, matrix_numel] batch (Frobenius
// normalization): grid (blocks, B), one matrix per blockIdx.y, its factor computed once per
// thread; 8 bf16 (16 bytes) per load when kVector (matrix_numel % 8 == 0, x 16-byte aligned).
template <bool kVector>
__global__ void InverseNormBatchKernel(bf16* x, int64_t matrix_numel, const double* sums,
                                       float eps) {
  const int64_t b = blockIdx.y;
  const float factor = static_cast<float>(1.0 / (sqrt(sums[b]) + eps));
  bf16* mat = x + b * matrix_numel;
  const int64_t stride = int64_t{gridDim.x} * blockDim.x;
  const int64_t first = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
  if (kVector) {
    uint4* vectors = reinterpret_cast<uint4*>(mat);
    for (int64_t i = first; i < matrix_numel / 8; i += stride) {
      uint4 packed = vectors[i];
      bf16* values = reinterpret_cast<bf16*>(&packed);
#pragma unroll
      for (int k = 0; k < 8; ++k) {
        values[k] = __float2bfloat16_rn(__bfloat162float(values[k]) * factor);
      }
      vectors[i] = packed;
    }
  } else {
    for (int64_t i = first; i < matrix_numel; i += stride) {
      mat[i] = __float2bfloat16_rn(__bfloat162float(mat[i]) * factor);
    }
  }
}

// p = p (1 - lr wd) - lr scale X over one tile (X read from the oriented batch, a tall
// matrix's through shared memory), the bf16 compute copy, and sum (p_new - p_old)^2.
template <bool kRecord>
__global__ void MuonApplyTileKernel(const MuonRef* mats, const TileRef* tiles, const bf16* x,
                                    int64_t matrix_numel, float lr, double* partials) {
  __shared__ float tile_x[kTileDim][kTileDim + 1];
  const TileRef tile = tiles[blockIdx.x];
  const MuonRef mat = mats[tile.matrix];
  const bf16* in = x + tile.matrix * matrix_numel;
  const int lane = threadIdx.x % kTileDim, row0 = threadIdx.x / kTileDim;
  const int64_t r0 = int64_t{tile.tile_row} * kTileDim, c0 = int64_t{tile.tile_col} * kTileDim;
  if (mat.transposed) {
    // tile_x[a][b] = X(r0 + b, c0 + a), read along oriented rows (stored columns).
    for (int k = row0; k < kTileDim; k += kTileRowsPerPass) {
      const int64_t c = c0 + k, r = r0 + lane;
      if (r < mat.rows && c < mat.cols) tile_x[k][lane] = __bfloat162float(in[c * mat.rows + r]);
    }
    __syncthreads();
  }
  const float decay = __fsub_rn(1.0f, __fmul_rn(lr, mat.weight_decay));
  const float step_size = __fmul_rn(lr, mat.scale);
  double acc = 0;
  for (int k = row0; k < kTileDim; k += kTileRowsPerPass) {
    const int64_t r = r0 + k, c = c0 + lane;
    if (r < mat.rows && c < mat.cols) {
      const int64_t i = r * mat.cols + c;
      const float xv = mat.transposed ? tile_x[lane][k] : __bfloat162float(in[i]);
      const float old = mat.p[i];
      const float updated = old * decay - step_size * xv;
      mat.p[i] = updated;
      if (mat.compute != nullptr) mat.compute[i] = __float2bfloat16_rn(updated);
      if (kRecord) {
        const double d = static_cast<double>(updated) - old;
        acc += d * d;
      }
    }
  }
  if (kRecord) WriteBlockPartial(acc, partials);
}

}  // namespace

SideStream::SideStream(int marks) : marks_(static_cast<size_t>(std::max(marks, 1)), nullptr) {
  SL_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  SL_CUDA_CHECK(cudaEventCreateWithFlags(&forked_, cudaEventDisableTiming));
  for (cudaEvent_t& mark : marks_) {
    SL_CUDA_CHECK(cudaEventCreateWithFlags(&mark, cudaEventDisableTiming));
  }
}

SideStream::~SideStream() {
  // Queued work may still use the stream; destroying it then is legal (CUDA releases it
  // when that work is done), but the events' waiters must not outlive them: finish first.
  SL_CUDA_CHECK(cudaStreamSynchronize(stream_));
  for (cudaEvent_t mark : marks_) SL_CUDA_CHECK(cudaEventDestroy(mark));
  SL_CUDA_CHECK(cudaEventDestroy(forked_));
  SL_CUDA_CHECK(cudaStreamDestroy(stream_));
}

void SideStream::Fork() {
  // An action on the legacy default stream (a record, a wait) first waits on every blocking
  // stream (the backend's: the backward pass), and blocking streams' later work waits on it
  // (CUDA driver API docs, "Stream synchronization behavior"); so the record below follows
  // the backward pass, and Join's wait holds back the next forward.
  SL_CUDA_CHECK(cudaEventRecord(forked_, /*stream=*/0));
  SL_CUDA_CHECK(cudaStreamWaitEvent(stream_, forked_, 0));
}

void SideStream::Mark(int i) {
  SL_CHECK_MSG(i >= 0 && i < static_cast<int>(marks_.size()),
               absl::StrCat("SideStream mark ", i, " of ", marks_.size()));
  SL_CUDA_CHECK(cudaEventRecord(marks_[i], stream_));
}

void SideStream::WaitMark(int i) {
  SL_CHECK_MSG(i >= 0 && i < static_cast<int>(marks_.size()),
               absl::StrCat("SideStream mark ", i, " of ", marks_.size()));
  SL_CUDA_CHECK(cudaStreamWaitEvent(/*stream=*/0, marks_[i], 0));
}

void SideStream::Join() {
  Mark(0);
  WaitMark(0);
}

void* SeparateCompute(const Parameter& param) {
  if (param.compute.empty() || param.compute.data() == param.master.data()) return nullptr;
  SL_CHECK_MSG(param.compute.dtype() == DType::kBF16 && param.compute.device() == Device::kCuda &&
                   param.compute.numel() == param.master.numel(),
               absl::StrCat(param.name, ": a separate compute copy must be bf16 on the GPU with ",
                            param.master.numel(), " elements, got ",
                            DTypeName(param.compute.dtype()), " ", param.compute.ShapeString()));
  return param.compute.data();
}

MultiTensorGradNorm::MultiTensorGradNorm(const std::vector<Parameter*>& params, Arena* arena) {
  SL_CHECK(arena != nullptr && arena->device() == Device::kCuda);
  SL_CHECK_MSG(!params.empty(), "MultiTensorGradNorm: no parameters");
  std::vector<GradRef> refs;
  std::vector<int64_t> numels;
  for (const Parameter* param : params) {
    CheckCudaF32(param->grad, absl::StrCat(param->name, " grad"));
    refs.push_back({param->grad.f32(), param->grad.numel()});
    numels.push_back(param->grad.numel());
  }
  const ChunkTable table = BuildChunkTable(numels, kChunkElements);
  num_chunks_ = static_cast<int>(table.chunks.size());
  tensors_ = Upload(refs, arena);
  chunks_ = Upload(table.chunks, arena);
  partials_ = DoubleBuffer(num_chunks_, arena);
  norm_ = arena->Allocate(DType::kF32, {1});
  factor_ = arena->Allocate(DType::kF32, {1});
}

void MultiTensorGradNorm::Compute(float max_norm, float* norm_out) {
  GradSumSquaresKernel<<<num_chunks_, kBlock>>>(As<GradRef>(tensors_), As<ChunkRef>(chunks_),
                                                As<double>(partials_));
  SL_CUDA_LAUNCH_CHECK();
  TotalAndClipFactorKernel<<<1, kBlock>>>(As<double>(partials_), num_chunks_, max_norm, norm_out,
                                          As<float>(factor_));
  SL_CUDA_LAUNCH_CHECK();
}

float MultiTensorGradNorm::Compute(float max_norm) {
  Compute(max_norm, As<float>(norm_));
  float norm = 0.0f;
  SL_CUDA_CHECK(cudaMemcpy(&norm, norm_.data(), sizeof(norm), cudaMemcpyDeviceToHost));
  return norm;
}

MultiTensorAdamW::MultiTensorAdamW(const std::vector<Parameter*>& params,
                                   const std::vector<Tensor>& m, const std::vector<Tensor>& v,
                                   const std::vector<float>& weight_decays, Arena* arena)
    : num_tensors_(static_cast<int>(params.size())) {
  SL_CHECK(arena != nullptr && arena->device() == Device::kCuda);
  SL_CHECK(m.size() == params.size() && v.size() == params.size() &&
           weight_decays.size() == params.size());
  std::vector<AdamWRef> refs;
  std::vector<int64_t> numels;
  for (size_t i = 0; i < params.size(); ++i) {
    const Parameter& param = *params[i];
    for (const Tensor* t : {&param.master, &param.grad, &m[i], &v[i]}) {
      CheckCudaF32(*t, absl::StrCat("AdamW operand of ", param.name));
      SL_CHECK(t->numel() == param.master.numel());
    }
    refs.push_back({param.master.f32(), param.grad.f32(), m[i].f32(), v[i].f32(),
                    static_cast<bf16*>(SeparateCompute(param)), param.master.numel(),
                    weight_decays[i]});
    numels.push_back(param.master.numel());
  }
  if (params.empty()) {
    num_chunks_ = 0;
    return;
  }
  const ChunkTable table = BuildChunkTable(numels, kChunkElements);
  num_chunks_ = static_cast<int>(table.chunks.size());
  tensors_ = Upload(refs, arena);
  chunks_ = Upload(table.chunks, arena);
  chunk_begin_ = Upload(table.chunk_begin, arena);
  partials_ = DoubleBuffer(num_chunks_, arena);
  sums_ = DoubleBuffer(num_tensors_, arena);
}

void MultiTensorAdamW::Step(float beta1, float beta2, float eps, float lr, float step_size,
                            float bias_correction2_sqrt, const float* grad_scale, bool record,
                            cudaStream_t stream) {
  last_stream_ = stream;
  if (num_chunks_ == 0) return;
  if (record) {
    AdamWChunkKernel<true><<<num_chunks_, kBlock, 0, stream>>>(
        As<AdamWRef>(tensors_), As<ChunkRef>(chunks_), beta1, beta2, eps, lr, step_size,
        bias_correction2_sqrt, grad_scale, As<double>(partials_));
    SL_CUDA_LAUNCH_CHECK();
    ReduceRangesKernel<<<num_tensors_, kBlock, 0, stream>>>(
        As<double>(partials_), As<int32_t>(chunk_begin_), As<double>(sums_));
  } else {
    AdamWChunkKernel<false><<<num_chunks_, kBlock, 0, stream>>>(
        As<AdamWRef>(tensors_), As<ChunkRef>(chunks_), beta1, beta2, eps, lr, step_size,
        bias_correction2_sqrt, grad_scale, nullptr);
  }
  SL_CUDA_LAUNCH_CHECK();
}

void MultiTensorAdamW::CopyUpdateSumSquares(std::vector<double>* out) const {
  SL_CHECK(out != nullptr && out->size() == static_cast<size_t>(num_tensors_));
  if (num_tensors_ == 0) return;
  SL_CUDA_CHECK(cudaMemcpyAsync(out->data(), sums_.data(), sizeof(double) * num_tensors_,
                                cudaMemcpyDeviceToHost, last_stream_));
  SL_CUDA_CHECK(cudaStreamSynchronize(last_stream_));
}

// The device tables and buffers of one shape group.
struct MultiTensorMuon::Group {
  Tensor mats, tiles, tile_begin;
  int num_tiles = 0;
  int64_t batch = 0;  // matrices
  int64_t slice = 0;  // matrices per rank (batch when not sharded)
  Tensor x;           // bf16 [slice * world] oriented matrices (batch when not sharded)
  Tensor next;        // bf16 [slice] matrices: the Newton-Schulz iteration's other iterate
  Tensor partials;    // per tile: the momentum kernel's sums of u^2
  Tensor norm_sums;   // per matrix
};

MultiTensorMuon::MultiTensorMuon(const std::vector<Parameter*>& params,
                                 const std::vector<Tensor>& m,
                                 const std::vector<float>& weight_decays,
                                 const std::vector<float>& scales, float beta, bool nesterov,
                                 int ns_steps, Arena* arena, MuonSharding sharding)
    : beta_(beta),
      nesterov_(nesterov),
      ns_steps_(ns_steps),
      sharding_(std::move(sharding)),
      sharded_(static_cast<bool>(sharding_.all_gather)) {
  SL_CHECK(arena != nullptr && arena->device() == Device::kCuda);
  SL_CHECK(m.size() == params.size() && weight_decays.size() == params.size() &&
           scales.size() == params.size());
  const int world = sharding_.world, rank = sharding_.rank;
  SL_CHECK_MSG(world >= 1 && rank >= 0 && rank < world,
               absl::StrCat("MultiTensorMuon: rank ", rank, " of ", world));
  SL_CHECK_MSG(world == 1 || sharded_,
               absl::StrCat("MultiTensorMuon: ", world, " ranks need an all_gather"));
  for (const Parameter* param : params) {
    SL_CHECK_MSG(param->master.rank() == 2, absl::StrCat(param->name, ": Muon takes matrices"));
    shapes_.push_back({param->master.dim(0), param->master.dim(1)});
  }
  groups_ = GroupByWideShape(shapes_);
  int64_t max_x = 1, max_gram = 1, max_tiles = 1, max_batch = 1;
  for (const MuonShapeGroup& group : groups_) {
    const int64_t batch = static_cast<int64_t>(group.members.size());
    SL_CHECK_MSG(batch <= 65535, absl::StrCat(batch, " matrices of shape [", group.n, ", ", group.m,
                                              "]: at most 65535 per group (grid y)"));
    std::vector<MuonRef> refs;
    std::vector<std::pair<int64_t, int64_t>> group_shapes;
    for (size_t j = 0; j < group.members.size(); ++j) {
      const int k = group.members[j];
      const Parameter& param = *params[k];
      for (const Tensor* t : {&param.master, &param.grad, &m[k]}) {
        CheckCudaF32(*t, absl::StrCat("Muon operand of ", param.name));
        SL_CHECK(t->numel() == param.master.numel());
      }
      const auto [rows, cols] = shapes_[k];
      SL_CHECK_MSG(rows <= INT32_MAX && cols <= INT32_MAX,
                   absl::StrCat(param.name, " is too large for int32 tile indices"));
      refs.push_back({param.grad.f32(), m[k].f32(), param.master.f32(),
                      static_cast<bf16*>(SeparateCompute(param)), static_cast<int32_t>(rows),
                      static_cast<int32_t>(cols), group.transposed[j] ? 1 : 0, weight_decays[k],
                      scales[k]});
      group_shapes.push_back(shapes_[k]);
    }
    const TileTable table = BuildTileTable(group_shapes);
    Group tables;
    tables.mats = Upload(refs, arena);
    tables.tiles = Upload(table.tiles, arena);
    tables.tile_begin = Upload(table.tile_begin, arena);
    tables.num_tiles = static_cast<int>(table.tiles.size());
    tables.batch = batch;
    tables.slice = sharded_ ? (batch + world - 1) / world : batch;
    const int64_t matrix_numel = group.n * group.m;
    tables.x =
        arena->Allocate(DType::kBF16, {tables.slice * (sharded_ ? world : 1) * matrix_numel});
    tables.next = arena->Allocate(DType::kBF16, {tables.slice * matrix_numel});
    tables.partials = DoubleBuffer(tables.num_tiles, arena);
    tables.norm_sums = DoubleBuffer(batch, arena);
    group_tables_.push_back(std::move(tables));
    max_x = std::max(max_x, batch * matrix_numel);
    max_gram = std::max(max_gram, group_tables_.back().slice * group.n * group.n);
    max_tiles = std::max<int64_t>(max_tiles, table.tiles.size());
    max_batch = std::max(max_batch, batch);
  }
  newton_schulz_ = std::make_unique<BatchedNewtonSchulzGpu>(/*max_numel=*/0, max_gram, arena);
  prepare_ = std::make_unique<SideStream>(static_cast<int>(groups_.size()));
  apply_ = std::make_unique<SideStream>();
  apply_partials_ = DoubleBuffer(max_tiles, arena);
  update_sums_ = DoubleBuffer(max_batch, arena);
  host_bits_.resize(max_x);
  host_x_.resize(max_x);
  host_matrix_.resize(max_x);  // any member matrix, stored layout
  host_sums_.resize(max_batch);
}

MultiTensorMuon::~MultiTensorMuon() = default;

int64_t MultiTensorMuon::slice_begin(size_t g) const {
  return sharded_ ? sharding_.rank * group_tables_[g].slice : 0;
}

int64_t MultiTensorMuon::slice_count(size_t g) const {
  const Group& tables = group_tables_[g];
  return std::max<int64_t>(0, std::min(tables.batch - slice_begin(g), tables.slice));
}

void MultiTensorMuon::Prepare(size_t g, const float* grad_scale, cudaStream_t stream) {
  const MuonShapeGroup& group = groups_[g];
  const Group& tables = group_tables_[g];
  const int64_t matrix_numel = group.n * group.m;
  // u = momentum look-ahead into x, oriented, with the Frobenius partials.
  MuonMomentumTileKernel<<<tables.num_tiles, kBlock, 0, stream>>>(
      As<MuonRef>(tables.mats), As<TileRef>(tables.tiles), As<bf16>(tables.x), matrix_numel, beta_,
      nesterov_, grad_scale, As<double>(tables.partials));
  SL_CUDA_LAUNCH_CHECK();
  ReduceRangesKernel<<<static_cast<unsigned>(tables.batch), kBlock, 0, stream>>>(
      As<double>(tables.partials), As<int32_t>(tables.tile_begin), As<double>(tables.norm_sums));
  SL_CUDA_LAUNCH_CHECK();
  // x's base is 256-byte aligned (arena), so every matrix is 16-byte aligned when
  // matrix_numel % 8 == 0.
  const bool vector = matrix_numel % 8 == 0;
  const int64_t per_thread = vector ? matrix_numel / 8 : matrix_numel;
  const dim3 grid(std::min<unsigned>(cuda::GridFor(per_thread), 4096u),
                  static_cast<unsigned>(tables.batch));
  if (vector) {
    InverseNormBatchKernel<true><<<grid, kBlock, 0, stream>>>(
        As<bf16>(tables.x), matrix_numel, As<double>(tables.norm_sums), kNewtonSchulzEps);
  } else {
    InverseNormBatchKernel<false><<<grid, kBlock, 0, stream>>>(
        As<bf16>(tables.x), matrix_numel, As<double>(tables.norm_sums), kNewtonSchulzEps);
  }
  SL_CUDA_LAUNCH_CHECK();
}

Tensor MultiTensorMuon::Orthogonalize(size_t g) {
  const MuonShapeGroup& group = groups_[g];
  const Group& tables = group_tables_[g];
  const int64_t matrix_numel = group.n * group.m;
  const Tensor whole(tables.x.data(), DType::kBF16, Device::kCuda,
                     {tables.batch, group.n, group.m});
  if (!sharded_) return newton_schulz_->Iterate(whole, ns_steps_, tables.next);
  // This rank's slice, at its own place in the padded batch; an empty one (more ranks than
  // matrices) still takes part, sending its padding in place. The send buffer holds `slice`
  // matrices either way: that place in x (in place: NCCL needs send == recv + rank * bytes
  // exactly, never another overlap) or the group's scratch (a slice), whose matrices past
  // `count` are padding that lands past the batch and is never read.
  bf16* mine = As<bf16>(tables.x) + slice_begin(g) * matrix_numel;
  const void* send = mine;
  const int64_t count = slice_count(g);
  if (count > 0) {
    const Tensor slice(mine, DType::kBF16, Device::kCuda, {count, group.n, group.m});
    send = newton_schulz_->Iterate(slice, ns_steps_, tables.next).data();
  }
  sharding_.all_gather(send, tables.x.data(),
                       tables.slice * matrix_numel * static_cast<int64_t>(sizeof(bf16)));
  return whole;
}

void MultiTensorMuon::Step(float lr, const float* grad_scale, const MatrixStats* stats) {
  const bool record = stats != nullptr;
  // Every group's momentum and normalization on the side stream, ahead of the products.
  prepare_->Fork();
  for (size_t g = 0; g < groups_.size(); ++g) {
    Prepare(g, grad_scale, prepare_->stream());
    prepare_->Mark(static_cast<int>(g));
  }
  for (size_t g = 0; g < groups_.size(); ++g) {
    const MuonShapeGroup& group = groups_[g];
    const Group& tables = group_tables_[g];
    const int64_t batch = tables.batch;
    const int64_t matrix_numel = group.n * group.m;
    prepare_->WaitMark(static_cast<int>(g));
    const Tensor result = Orthogonalize(g);
    if (record) {
      MuonApplyTileKernel<true><<<tables.num_tiles, kBlock>>>(
          As<MuonRef>(tables.mats), As<TileRef>(tables.tiles), As<bf16>(result), matrix_numel, lr,
          As<double>(apply_partials_));
      SL_CUDA_LAUNCH_CHECK();
      ReduceRangesKernel<<<static_cast<unsigned>(batch), kBlock>>>(
          As<double>(apply_partials_), As<int32_t>(tables.tile_begin), As<double>(update_sums_));
    } else {
      // Beside the next group's products: the update reads this group's batch or scratch,
      // which nothing on stream 0 touches again in this step.
      apply_->Fork();
      MuonApplyTileKernel<false><<<tables.num_tiles, kBlock, 0, apply_->stream()>>>(
          As<MuonRef>(tables.mats), As<TileRef>(tables.tiles), As<bf16>(result), matrix_numel, lr,
          nullptr);
    }
    SL_CUDA_LAUNCH_CHECK();
    if (!record) continue;
    // Statistics steps only: the sums and X to the host (one copy each per group).
    SL_CUDA_CHECK(cudaMemcpy(host_sums_.data(), update_sums_.data(), sizeof(double) * batch,
                             cudaMemcpyDeviceToHost));
    SL_CUDA_CHECK(
        cudaMemcpy(host_bits_.data(), result.data(), result.nbytes(), cudaMemcpyDeviceToHost));
    for (int64_t i = 0; i < result.numel(); ++i) host_x_[i] = BF16ToFloat(BF16{host_bits_[i]});
    for (int64_t j = 0; j < batch; ++j) {
      const int k = group.members[j];
      const auto [rows, cols] = shapes_[k];
      const float* oriented = host_x_.data() + j * matrix_numel;
      const float* stored = oriented;
      if (group.transposed[j]) {  // oriented [cols, rows] back to [rows, cols]
        for (int64_t r = 0; r < rows; ++r) {
          for (int64_t c = 0; c < cols; ++c) host_matrix_[r * cols + c] = oriented[c * rows + r];
        }
        stored = host_matrix_.data();
      }
      (*stats)(k, host_sums_[j], stored);
    }
  }
  // Stream 0 (and through it the next forward and the next step's momentum, which rewrites
  // the batches) waits for the updates.
  if (!record) apply_->Join();
}

}  // namespace cuda_optim
}  // namespace sinklab

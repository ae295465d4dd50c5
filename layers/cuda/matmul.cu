// Linear layers without bias through cuBLASLt (layers/cuda/gemm_lt.h): bf16 operands, fp32
// accumulation; activations bf16, weight gradients accumulated in fp32 (beta = 1); a block's
// residual add rides in the output projection's epilogue (C = residual, beta = 1). The
// weight [OC, C] fixes the 2-D view of the activations: [numel / C, C] in, [.., OC] out
// (so q [B, T, H, d] is [N, H d], as backend.h lays it out).
//
// Narrow layers (OC bf16 outputs whose rows are not a multiple of 16 bytes, OC <= 64: the
// headwise attention gate's G = heads) run on rows padded to a multiple of 8: cuBLASLt runs
// misaligned operands on slow fallback kernels (G2's 12-gate weight gradient took 0.16 ms a
// layer on cutlass_75 align1, 1.9 ms of a 33 ms llama_160m step, H100). The padding costs a
// copy of the weight (OC x C) and copies of the [N, OC] rows to and from padded ones.
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "core/cuda_check.h"
#include "layers/cuda/cuda_backend.h"
#include "layers/cuda/gemm_lt.h"
#include "layers/cuda/kernel_util.cuh"

namespace sinklab {
namespace {

Tensor Rows(const Tensor& t, int64_t cols) {
  SL_CHECK_MSG(t.numel() % cols == 0,
               absl::StrCat("matmul operand ", t.ShapeString(), " is not [N, ", cols, "]"));
  return t.Reshaped({t.numel() / cols, cols});
}

constexpr int64_t kMaxNarrow = 64;

// OC rounded up to a multiple of 8 when the [N, OC] bf16 rows of a narrow layer are misaligned
// for cuBLASLt; 0 when the plain path serves.
int64_t PaddedWidth(const Tensor& weight, DType activations) {
  const int64_t oc = weight.dim(0);
  if (activations != DType::kBF16 || weight.dtype() != DType::kBF16 || oc > kMaxNarrow ||
      oc % 8 == 0) {
    return 0;
  }
  return (oc + 7) / 8 * 8;
}

// dst [rows, dst_width] <- columns [0, width) of src [rows, src_width], dst's columns past
// width zeroed (the padding the narrow products read). A thread an element: rows are narrow.
__global__ void CopyRowsKernel(cuda::bf16* dst, int64_t dst_width, const cuda::bf16* src,
                               int64_t src_width, int64_t width, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t row = i / dst_width, col = i % dst_width;
    dst[i] = col < width ? src[row * src_width + col] : __float2bfloat16(0.0f);
  }
}

void CopyRows(cudaStream_t stream, void* dst, int64_t dst_width, const void* src, int64_t src_width,
              int64_t width, int64_t rows) {
  const int64_t n = rows * dst_width;
  CopyRowsKernel<<<std::min<int64_t>(cuda::GridFor(n), 4096), cuda::kBlock, 0, stream>>>(
      static_cast<cuda::bf16*>(dst), dst_width, static_cast<const cuda::bf16*>(src), src_width,
      width, n);
  SL_CUDA_LAUNCH_CHECK();
}

}  // namespace

// The weight [OC, C] with rows OC..ocp zero, in workspace memory at `at`.
Tensor CudaBackend::PaddedWeight(char* at, const Tensor& weight, int64_t ocp) {
  const int64_t oc = weight.dim(0), c = weight.dim(1);
  SL_CUDA_CHECK(
      cudaMemcpyAsync(at, weight.data(), weight.nbytes(), cudaMemcpyDeviceToDevice, stream_));
  SL_CUDA_CHECK(cudaMemsetAsync(at + weight.nbytes(), 0, (ocp - oc) * c * 2, stream_));
  return Tensor(at, DType::kBF16, Device::kCuda, {ocp, c});
}

void CudaBackend::NarrowMatmulForward(const Tensor& out, const Tensor& inp, const Tensor& weight,
                                      int64_t ocp) {
  const int64_t oc = weight.dim(0), c = weight.dim(1), n = out.numel() / oc;
  const size_t w_bytes = AlignUp256(ocp * c * 2);
  char* ws = static_cast<char*>(Workspace(w_bytes + ocp * n * 2));
  const Tensor w_pad = PaddedWeight(ws, weight, ocp);
  const Tensor out_pad(ws + w_bytes, DType::kBF16, Device::kCuda, {n, ocp});
  gemm_->RowMajor(out_pad, Rows(inp, c), false, w_pad, true, 1.0f, 0.0f);
  CopyRows(stream_, out.data(), oc, out_pad.data(), ocp, oc, n);
}

void CudaBackend::NarrowMatmulBackward(const Tensor& dinp, const Tensor& dweight,
                                       const Tensor& dout, const Tensor& inp, const Tensor& weight,
                                       GradWrite dinp_write, int64_t ocp) {
  const int64_t oc = weight.dim(0), c = weight.dim(1), n = dout.numel() / oc;
  const size_t w_bytes = AlignUp256(ocp * c * 2), d_bytes = AlignUp256(n * ocp * 2);
  char* ws = static_cast<char*>(Workspace(w_bytes + d_bytes + ocp * c * 4));
  // dout with zero columns oc..ocp (zero, as the padded weight's rows, so they add nothing).
  const Tensor dout_pad(ws + w_bytes, DType::kBF16, Device::kCuda, {n, ocp});
  CopyRows(stream_, dout_pad.data(), ocp, dout.data(), oc, oc, n);
  if (!dinp.empty()) {
    const float beta = dinp_write == GradWrite::kAccumulate ? 1.0f : 0.0f;
    gemm_->RowMajor(Rows(dinp, c), dout_pad, false, PaddedWeight(ws, weight, ocp), false, 1.0f,
                    beta);
  }
  if (dweight.empty()) return;
  // [ocp, C] f32 = dout_pad^T inp; its first oc rows are dweight's increment.
  const Tensor dw_pad(ws + w_bytes + d_bytes, DType::kF32, Device::kCuda, {ocp, c});
  gemm_->RowMajor(dw_pad, dout_pad, true, Rows(inp, c), false, 1.0f, 0.0f);
  AddInto(dweight, dw_pad.Slice0(0, oc));
}

void CudaBackend::MatmulForward(const Tensor& out, const Tensor& inp, const Tensor& weight,
                                const Tensor& residual) {
  const int64_t oc = weight.dim(0), c = weight.dim(1);
  const Tensor out2 = Rows(out, oc);
  const int64_t ocp = PaddedWidth(weight, out.dtype());
  if (residual.empty() && ocp > 0) return NarrowMatmulForward(out2, inp, weight, ocp);
  if (residual.empty()) {
    gemm_->RowMajor(out2, Rows(inp, c), /*trans_a=*/false, weight, /*trans_b=*/true, 1.0f, 0.0f);
    return;
  }
  // The residual enters as cuBLASLt's C (beta 1, read in the epilogue): out = one rounding of
  // the fp32 sum, and no separate add kernel or branch-output buffer.
  SL_CHECK_MSG(residual.numel() == out.numel() && residual.dtype() == out.dtype(),
               absl::StrCat("MatmulForward: residual ", residual.ShapeString(), " ",
                            DTypeName(residual.dtype()), " vs out ", out.ShapeString(), " ",
                            DTypeName(out.dtype())));
  gemm_->RowMajor(out2, Rows(inp, c), false, weight, true, 1.0f, 1.0f, Rows(residual, oc));
}

void CudaBackend::MatmulBackward(const Tensor& dinp, const Tensor& dweight, const Tensor& dout,
                                 const Tensor& inp, const Tensor& weight, GradWrite dinp_write) {
  const int64_t oc = weight.dim(0), c = weight.dim(1);
  const Tensor dout2 = Rows(dout, oc);
  const int64_t ocp = PaddedWidth(weight, dout.dtype());
  if (ocp > 0) return NarrowMatmulBackward(dinp, dweight, dout2, inp, weight, dinp_write, ocp);
  if (!dinp.empty()) {
    const float beta = dinp_write == GradWrite::kAccumulate ? 1.0f : 0.0f;
    gemm_->RowMajor(Rows(dinp, c), dout2, false, weight, false, 1.0f, beta);
  }
  if (!dweight.empty()) gemm_->RowMajor(dweight, dout2, true, Rows(inp, c), false, 1.0f, 1.0f);
}

void CudaBackend::MatmulForwardGroup(const Tensor& outs, const Tensor& inp, const Tensor& weights) {
  const int64_t g = weights.dim(0), oc = weights.dim(1), c = weights.dim(2);
  const Tensor outs3 = outs.Reshaped({g, outs.numel() / (g * oc), oc});
  gemm_->RowMajorBatched(outs3, Rows(inp, c), /*trans_a=*/false, weights, /*trans_b=*/true, 1.0f,
                         0.0f, outs3);
}

void CudaBackend::MatmulWeightGradGroup(const Tensor& dweights, const Tensor& douts,
                                        const Tensor& inp) {
  const int64_t g = dweights.dim(0), oc = dweights.dim(1), c = dweights.dim(2);
  gemm_->RowMajorBatched(dweights, douts.Reshaped({g, douts.numel() / (g * oc), oc}),
                         /*trans_a=*/true, Rows(inp, c), /*trans_b=*/false, 1.0f, 1.0f, dweights);
}

}  // namespace sinklab

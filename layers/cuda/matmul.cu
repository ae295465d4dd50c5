// Linear layers without bias through cuBLASLt (layers/cuda/gemm_lt.h): bf16 operands, fp32
// accumulation; activations bf16, weight gradients accumulated in fp32 (beta = 1); a block's
// residual add rides in the output projection's epilogue (C = residual, beta = 1). The
// weight [OC, C] fixes the 2-D view of the activations: [numel / C, C] in, [.., OC] out
// (so q [B, T, H, d] is [N, H d], as backend.h lays it out).
#include "absl/strings/str_cat.h"
#include "layers/cuda/cuda_backend.h"
#include "layers/cuda/gemm_lt.h"

namespace sinklab {
namespace {

Tensor Rows(const Tensor& t, int64_t cols) {
  SL_CHECK_MSG(t.numel() % cols == 0,
               absl::StrCat("matmul operand ", t.ShapeString(), " is not [N, ", cols, "]"));
  return t.Reshaped({t.numel() / cols, cols});
}

}  // namespace

void CudaBackend::MatmulForward(const Tensor& out, const Tensor& inp, const Tensor& weight,
                                const Tensor& residual) {
  const int64_t oc = weight.dim(0), c = weight.dim(1);
  const Tensor out2 = Rows(out, oc);
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

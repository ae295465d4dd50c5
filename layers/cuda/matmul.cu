// Linear layers without bias through cuBLASLt (layers/cuda/gemm_lt.h): bf16 operands, fp32
// accumulation; activations bf16, weight gradients accumulated in fp32 (beta = 1).
#include "layers/cuda/cuda_backend.h"
#include "layers/cuda/gemm_lt.h"

namespace sinklab {

void CudaBackend::MatmulForward(const Tensor& out, const Tensor& inp, const Tensor& weight) {
  gemm_->RowMajor(out, inp, /*trans_a=*/false, weight, /*trans_b=*/true, 1.0f, 0.0f);
}

void CudaBackend::MatmulBackward(const Tensor& dinp, const Tensor& dweight, const Tensor& dout,
                                 const Tensor& inp, const Tensor& weight) {
  if (!dinp.empty()) gemm_->RowMajor(dinp, dout, false, weight, false, 1.0f, 1.0f);
  if (!dweight.empty()) gemm_->RowMajor(dweight, dout, true, inp, false, 1.0f, 1.0f);
}

}  // namespace sinklab

// CPU matmul (a linear layer without bias): the three products of forward and backward,
// each one call of Gemm (layers/cpu/gemm.h) with the transposes expressed as strides.
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "layers/cpu/cpu_backend.h"
#include "layers/cpu/gemm.h"

namespace sinklab {
namespace {

// Checks out [N, OC] = inp [N, C] @ weight [OC, C]^T shapes; returns {N, C, OC}.
struct MatmulShape {
  int64_t n, c, oc;
};
MatmulShape CheckMatmulShapes(const Tensor& out, const Tensor& inp, const Tensor& weight) {
  CheckCpuF32(inp, "Matmul inp");
  CheckCpuF32(weight, "Matmul weight");
  CheckCpuF32(out, "Matmul out");
  SL_CHECK_MSG(weight.rank() == 2, absl::StrCat("Matmul weight ", weight.ShapeString()));
  // Leading dims are flattened: q [B, T, H, d_h] is [B*T, H*d_h] to a matmul.
  const int64_t oc = weight.dim(0), c = weight.dim(1);
  SL_CHECK_MSG(inp.numel() % c == 0 && out.numel() == inp.numel() / c * oc,
               absl::StrCat("Matmul: out ", out.ShapeString(), " = inp ", inp.ShapeString(),
                            " @ weight ", weight.ShapeString(), "^T"));
  return {inp.numel() / c, c, oc};
}

}  // namespace

void CpuBackend::MatmulForward(const Tensor& out, const Tensor& inp, const Tensor& weight,
                               const Tensor& residual) {
  const MatmulShape s = CheckMatmulShapes(out, inp, weight);
  if (!residual.empty()) {
    CheckSameShape(residual, out, "MatmulForward residual");
    if (residual.data() != out.data()) {
      std::copy(residual.f32(), residual.f32() + residual.numel(), out.f32());
    }
  }
  // out[n, o] (+)= sum_c inp[n, c] * weight[o, c]: a = inp, b(c, o) = weight[o, c].
  Gemm(out.f32(), s.oc, StridedMatrix{inp.f32(), s.c, 1}, StridedMatrix{weight.f32(), 1, s.c}, s.n,
       s.oc, s.c, /*accumulate=*/!residual.empty());
}

void CpuBackend::MatmulBackward(const Tensor& dinp, const Tensor& dweight, const Tensor& dout,
                                const Tensor& inp, const Tensor& weight, GradWrite dinp_write) {
  const MatmulShape s = CheckMatmulShapes(dout, inp, weight);
  if (!dinp.empty()) {
    CheckSameShape(dinp, inp, "MatmulBackward dinp");
    // dinp[n, c] (+)= sum_o dout[n, o] * weight[o, c].
    Gemm(dinp.f32(), s.c, StridedMatrix{dout.f32(), s.oc, 1}, StridedMatrix{weight.f32(), s.c, 1},
         s.n, s.c, s.oc, /*accumulate=*/dinp_write == GradWrite::kAccumulate);
  }
  if (dweight.empty()) return;
  CheckSameShape(dweight, weight, "MatmulBackward dweight");
  // dweight[o, c] += sum_n dout[n, o] * inp[n, c]: a(o, n) = dout[n, o]; threads own rows
  // of dweight, the sum over n runs in order (no cross-thread reduction).
  Gemm(dweight.f32(), s.c, StridedMatrix{dout.f32(), 1, s.oc}, StridedMatrix{inp.f32(), s.c, 1},
       s.oc, s.c, s.n, /*accumulate=*/true);
}

}  // namespace sinklab

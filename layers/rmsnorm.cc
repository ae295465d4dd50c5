#include "layers/rmsnorm.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "layers/make_parameter.h"

namespace sinklab {

RmsNorm::RmsNorm(Backend* backend, Arena* arena, std::string name, int64_t d_model,
                 int64_t max_rows, float eps)
    : backend_(backend),
      weight_(MakeParameter(arena, *backend, std::move(name), ParamKind::kNorm, {d_model})),
      eps_(eps),
      rstd_(arena->Allocate(DType::kF32, {max_rows})) {}

Tensor RmsNorm::RowsOf(const Tensor& x) const {
  const int64_t rows = x.numel() / weight_.master.numel();
  SL_CHECK_MSG(rows <= rstd_.numel(),
               absl::StrCat(weight_.name, ": ", rows, " rows > ", rstd_.numel()));
  return rstd_.Slice0(0, rows);
}

void RmsNorm::Forward(const Tensor& out, const Tensor& inp) {
  backend_->RmsNormForward(out, RowsOf(inp), inp, weight_.compute, eps_);
}

void RmsNorm::Backward(const Tensor& dinp, const Tensor& dout, const Tensor& inp,
                       GradWrite dinp_write) {
  backend_->RmsNormBackward(dinp, weight_.grad, dout, inp, weight_.compute, RowsOf(inp),
                            dinp_write);
}

void RmsNorm::ForwardRope(const Tensor& out, const Tensor& inp, const Rope& rope) {
  backend_->RmsNormRopeForward(out, RowsOf(inp), inp, weight_.compute, eps_, rope.cos(),
                               rope.sin());
}

void RmsNorm::BackwardRope(const Tensor& dinp, const Tensor& dout, const Tensor& inp,
                           const Rope& rope, const Tensor& scratch) {
  backend_->RmsNormRopeBackward(dinp, weight_.grad, dout, inp, weight_.compute, RowsOf(inp),
                                rope.cos(), rope.sin(), scratch);
}

}  // namespace sinklab

#include "layers/lm_head.h"

#include "layers/make_parameter.h"

namespace sinklab {

LmHead::LmHead(Backend* backend, Arena* arena, int64_t vocab, int64_t d_model,
               Parameter* tied_table)
    : backend_(backend), weight_(tied_table != nullptr ? tied_table : &own_weight_) {
  if (tied_table == nullptr) {
    own_weight_ = MakeParameter(arena, *backend, "lm_head", ParamKind::kHead, {vocab, d_model});
  } else {
    SL_CHECK(tied_table->master.dim(0) == vocab && tied_table->master.dim(1) == d_model);
  }
}

void LmHead::Forward(const Tensor& logits, const Tensor& inp) {
  backend_->MatmulForward(logits, inp, weight_->compute, /*residual=*/Tensor());
}

void LmHead::Backward(const Tensor& dinp, const Tensor& dlogits, const Tensor& inp) {
  backend_->MatmulBackward(dinp, weight_->grad, dlogits, inp, weight_->compute,
                           GradWrite::kAssign);
}

}  // namespace sinklab

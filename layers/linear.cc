#include "layers/linear.h"

#include <utility>

#include "layers/make_parameter.h"

namespace sinklab {

Linear::Linear(Backend* backend, Arena* arena, std::string name, int64_t in_features,
               int64_t out_features, ParamKind kind)
    : backend_(backend),
      weight_(MakeParameter(arena, *backend, std::move(name), kind, {out_features, in_features})) {}

Linear::Linear(Backend* backend, Parameter weight)
    : backend_(backend), weight_(std::move(weight)) {}

void Linear::Forward(const Tensor& out, const Tensor& inp) { Forward(out, inp, Tensor()); }

void Linear::Forward(const Tensor& out, const Tensor& inp, const Tensor& residual) {
  backend_->MatmulForward(out, inp, weight_.compute, residual);
}

void Linear::Backward(const Tensor& dinp, const Tensor& dout, const Tensor& inp,
                      GradWrite dinp_write) {
  backend_->MatmulBackward(dinp, weight_.grad, dout, inp, weight_.compute, dinp_write);
}

}  // namespace sinklab

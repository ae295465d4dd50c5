#include "layers/sink_tokens.h"

#include "layers/make_parameter.h"

namespace sinklab {

PrefixSinkTokens::PrefixSinkTokens(Backend* backend, Arena* arena, int64_t count,
                                   int64_t d_model)
    : backend_(backend),
      embed_(MakeParameter(arena, *backend, "prefix_embed", ParamKind::kEmbedding,
                           {count, d_model})) {}

void PrefixSinkTokens::Forward(const Tensor& out, const Tensor& inp) {
  backend_->PrependRows(out, embed_.compute, inp);
}

void PrefixSinkTokens::Backward(const Tensor& dinp, const Tensor& dout) {
  backend_->PrependRowsBackward(embed_.grad, dinp, dout);
}

}  // namespace sinklab

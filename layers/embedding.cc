#include "layers/embedding.h"

#include "layers/make_parameter.h"

namespace sinklab {

Embedding::Embedding(Backend* backend, Arena* arena, int64_t vocab, int64_t d_model)
    : backend_(backend),
      table_(MakeParameter(arena, *backend, "embed", ParamKind::kEmbedding, {vocab, d_model})) {}

void Embedding::Forward(const Tensor& out, const Tensor& tokens) {
  backend_->EmbeddingForward(out, tokens, table_.compute);
}

void Embedding::Backward(const Tensor& dout, const Tensor& tokens) {
  backend_->EmbeddingBackward(table_.grad, dout, tokens);
}

}  // namespace sinklab

// PrefixSinkTokens: P learned embeddings prepended to every sequence inside the model
// (Xiao et al. 2023, StreamingLLM, "a learnable sink token"; Darcet et al. 2024, "Vision
// Transformers Need Registers"). The residual stream then has S = P + T positions; the
// model puts no loss on the P prefix positions. "prefix_embed" [P, D], kind kEmbedding.
#ifndef SINKLAB_LAYERS_SINK_TOKENS_H_
#define SINKLAB_LAYERS_SINK_TOKENS_H_

#include "core/arena.h"
#include "layers/backend.h"
#include "layers/parameter.h"

namespace sinklab {

class PrefixSinkTokens {
 public:
  PrefixSinkTokens(Backend* backend, Arena* arena, int64_t count, int64_t d_model);

  // out [B, P + T, D] = (prefix_embed, inp [B, T, D]) per sequence. Caches nothing.
  void Forward(const Tensor& out, const Tensor& inp);
  // prefix_embed.grad += sum_b dout[b, :P];  dinp [B, T, D] += dout[b, P:].
  void Backward(const Tensor& dinp, const Tensor& dout);

  Parameter* embeddings() { return &embed_; }

 private:
  Backend* backend_;
  Parameter embed_;
};

}  // namespace sinklab

#endif  // SINKLAB_LAYERS_SINK_TOKENS_H_

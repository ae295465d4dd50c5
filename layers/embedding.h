// Embedding: token ids -> rows of a learned table [vocab, D].
#ifndef SINKLAB_LAYERS_EMBEDDING_H_
#define SINKLAB_LAYERS_EMBEDDING_H_

#include "core/arena.h"
#include "layers/backend.h"
#include "layers/parameter.h"

namespace sinklab {

class Embedding {
 public:
  // The table "embed" [vocab, d_model], kind kEmbedding.
  Embedding(Backend* backend, Arena* arena, int64_t vocab, int64_t d_model);

  // out [N, D] = table[tokens [N] i32]. Caches nothing.
  void Forward(const Tensor& out, const Tensor& tokens);
  // table.grad += scatter of dout [N, D] at tokens [N].
  void Backward(const Tensor& dout, const Tensor& tokens);

  Parameter* table() { return &table_; }

 private:
  Backend* backend_;
  Parameter table_;
};

}  // namespace sinklab

#endif  // SINKLAB_LAYERS_EMBEDDING_H_

// LmHead: logits = x W^T with W [vocab, D], its own "lm_head" (kind kHead) or, when tied,
// the embedding table (both gradient contributions then land in the table's grad).
#ifndef SINKLAB_LAYERS_LM_HEAD_H_
#define SINKLAB_LAYERS_LM_HEAD_H_

#include "core/arena.h"
#include "layers/backend.h"
#include "layers/parameter.h"

namespace sinklab {

class LmHead {
 public:
  // tied_table: the embedding Parameter to share, or nullptr for an own "lm_head".
  LmHead(Backend* backend, Arena* arena, int64_t vocab, int64_t d_model,
         Parameter* tied_table);

  // logits [N, V] = inp [N, D] W^T. Caches nothing.
  void Forward(const Tensor& logits, const Tensor& inp);
  // dinp [N, D] = dlogits W (overwritten); W.grad += dlogits^T inp.
  void Backward(const Tensor& dinp, const Tensor& dlogits, const Tensor& inp);

  bool tied() const { return weight_ != &own_weight_; }
  // The own weight (nullptr when tied: it is listed once, as "embed").
  Parameter* own_weight() { return tied() ? nullptr : &own_weight_; }

 private:
  Backend* backend_;
  Parameter own_weight_;  // empty when tied
  Parameter* weight_;
};

}  // namespace sinklab

#endif  // SINKLAB_LAYERS_LM_HEAD_H_

// Linear: y = x W^T without bias; W [out_features, in_features] (PyTorch nn.Linear layout).
#ifndef SINKLAB_LAYERS_LINEAR_H_
#define SINKLAB_LAYERS_LINEAR_H_

#include <string>

#include "core/arena.h"
#include "layers/backend.h"
#include "layers/parameter.h"

namespace sinklab {

class Linear {
 public:
  // Allocates W [out_features, in_features] (master, grad) from `arena`.
  Linear(Backend* backend, Arena* arena, std::string name, int64_t in_features,
         int64_t out_features, ParamKind kind = ParamKind::kMatrix);
  // Over an allocated weight (a member of a ParameterGroup).
  Linear(Backend* backend, Parameter weight);

  // out [N, out_features] = inp [N, in_features] W^T. Caches nothing (Backward takes inp).
  void Forward(const Tensor& out, const Tensor& inp);
  // out = residual + inp W^T (residual [N, out_features]; empty: as above; may alias out).
  void Forward(const Tensor& out, const Tensor& inp, const Tensor& residual);
  // dinp [N, in_features] = or += dout W (dinp_write; skipped when dinp is empty);
  // W.grad += dout^T inp.
  void Backward(const Tensor& dinp, const Tensor& dout, const Tensor& inp, GradWrite dinp_write);

  Parameter* weight() { return &weight_; }

 private:
  Backend* backend_;
  Parameter weight_;
};

}  // namespace sinklab

#endif  // SINKLAB_LAYERS_LINEAR_H_

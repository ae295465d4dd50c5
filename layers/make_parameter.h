// MakeParameter: the one place a Parameter's memory is allocated (master, grad, compute).
#ifndef SINKLAB_LAYERS_MAKE_PARAMETER_H_
#define SINKLAB_LAYERS_MAKE_PARAMETER_H_

#include <initializer_list>
#include <string>
#include <vector>

#include "core/arena.h"
#include "layers/backend.h"
#include "layers/parameter.h"

namespace sinklab {

// fp32 master and grad of `shape` from `arena` (zero-filled). `compute` aliases `master`
// when the backend's activations are F32 (the CPU), else it is a separate tensor of the
// activation dtype that RefreshCompute fills.
Parameter MakeParameter(Arena* arena, const Backend& backend, std::string name, ParamKind kind,
                        std::initializer_list<int64_t> shape);

// G parameters of one [R, C] shape whose masters, grads and compute copies are adjacent:
// matrix g of the [G, R, C] tensors below (Backend::MatmulForwardGroup and
// MatmulWeightGradGroup take those as one operand).
struct ParameterGroup {
  std::vector<Parameter> params;
  Tensor master, grad, compute;  // [G, R, C]
};
ParameterGroup MakeParameterGroup(Arena* arena, const Backend& backend,
                                  const std::vector<std::string>& names, ParamKind kind,
                                  int64_t rows, int64_t cols);

// The backward of a group of linear layers reading one input: dinp (first layer with
// dinp_write, the others +=) from douts [G, N, R] and the compute weights, then every
// group.grad[g] += douts[g]^T inp as one grouped matmul (MatmulWeightGradGroup).
void GroupBackward(Backend* backend, const ParameterGroup& group, const Tensor& dinp,
                   const Tensor& douts, const Tensor& inp, GradWrite dinp_write);

// compute <- master (dtype conversion); a no-op when they alias. Call after changing master
// (init, optimizer step, checkpoint load).
void RefreshCompute(Backend* backend, const Parameter& param);

}  // namespace sinklab

#endif  // SINKLAB_LAYERS_MAKE_PARAMETER_H_

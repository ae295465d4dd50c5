#include "layers/make_parameter.h"

#include <utility>

namespace sinklab {

Parameter MakeParameter(Arena* arena, const Backend& backend, std::string name, ParamKind kind,
                        std::initializer_list<int64_t> shape) {
  Parameter param;
  param.name = std::move(name);
  param.kind = kind;
  param.master = arena->Allocate(DType::kF32, shape);
  param.grad = arena->Allocate(DType::kF32, shape);
  param.compute = backend.activation_dtype() == DType::kF32
                      ? param.master
                      : arena->Allocate(backend.activation_dtype(), shape);
  return param;
}

ParameterGroup MakeParameterGroup(Arena* arena, const Backend& backend,
                                  const std::vector<std::string>& names, ParamKind kind,
                                  int64_t rows, int64_t cols) {
  const int64_t g = static_cast<int64_t>(names.size());
  ParameterGroup group;
  group.master = arena->Allocate(DType::kF32, {g, rows, cols});
  group.grad = arena->Allocate(DType::kF32, {g, rows, cols});
  group.compute = backend.activation_dtype() == DType::kF32
                      ? group.master
                      : arena->Allocate(backend.activation_dtype(), {g, rows, cols});
  for (int64_t i = 0; i < g; ++i) {
    Parameter param;
    param.name = names[i];
    param.kind = kind;
    param.master = group.master.Index0(i);
    param.grad = group.grad.Index0(i);
    param.compute = group.compute.Index0(i);
    group.params.push_back(std::move(param));
  }
  return group;
}

void GroupBackward(Backend* backend, const ParameterGroup& group, const Tensor& dinp,
                   const Tensor& douts, const Tensor& inp, GradWrite dinp_write) {
  for (int64_t g = 0; g < group.compute.dim(0); ++g) {
    backend->MatmulBackward(dinp, Tensor(), douts.Index0(g), inp, group.compute.Index0(g),
                            g == 0 ? dinp_write : GradWrite::kAccumulate);
  }
  backend->MatmulWeightGradGroup(group.grad, douts, inp);
}

void RefreshCompute(Backend* backend, const Parameter& param) {
  if (param.compute.data() != param.master.data()) backend->Convert(param.compute, param.master);
}

}  // namespace sinklab

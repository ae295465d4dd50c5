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

void RefreshCompute(Backend* backend, const Parameter& param) {
  if (param.compute.data() != param.master.data()) backend->Convert(param.compute, param.master);
}

}  // namespace sinklab

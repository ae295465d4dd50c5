// ParameterStore (tests only): small CPU Parameters carved from an Arena, with compute
// aliasing master as the CPU backend does.
#ifndef SINKLAB_TESTS_OPTIM_PARAMETER_STORE_H_
#define SINKLAB_TESTS_OPTIM_PARAMETER_STORE_H_

#include <algorithm>
#include <cstdint>
#include <deque>
#include <initializer_list>
#include <string>
#include <vector>

#include "core/arena.h"
#include "core/status.h"
#include "layers/parameter.h"

namespace sinklab {

class ParameterStore {
 public:
  // A zero master and grad of `shape`; the pointer stays valid for the store's lifetime.
  Parameter* Add(const std::string& name, ParamKind kind, std::initializer_list<int64_t> shape) {
    Parameter& param = params_.emplace_back();
    param.name = name;
    param.kind = kind;
    param.master = arena_.Allocate(DType::kF32, shape);
    param.grad = arena_.Allocate(DType::kF32, shape);
    param.compute = param.master;
    pointers_.push_back(&param);
    return &param;
  }

  // Sets master (or grad) from `values` (size must match numel).
  static void Fill(const Tensor& tensor, const std::vector<float>& values) {
    SL_CHECK(static_cast<int64_t>(values.size()) == tensor.numel());
    std::copy(values.begin(), values.end(), tensor.f32());
  }
  static std::vector<float> Values(const Tensor& tensor) {
    return std::vector<float>(tensor.f32(), tensor.f32() + tensor.numel());
  }

  const std::vector<Parameter*>& all() const { return pointers_; }

 private:
  Arena arena_{Device::kCpu, size_t{1} << 20};
  std::deque<Parameter> params_;
  std::vector<Parameter*> pointers_;
};

}  // namespace sinklab

#endif  // SINKLAB_TESTS_OPTIM_PARAMETER_STORE_H_

#include "optim/optimizer.h"

#include "absl/strings/str_cat.h"
#include "core/status.h"

namespace sinklab {

void CheckOptimizerParameter(const Parameter* param, const Arena& state_arena,
                             const char* optimizer, std::set<std::string>* names) {
  SL_CHECK(param != nullptr);
  SL_CHECK_MSG(names->insert(param->name).second,
               absl::StrCat("parameter '", param->name, "' given to ", optimizer, " twice"));
  SL_CHECK_MSG(param->master.dtype() == DType::kF32 && param->grad.dtype() == DType::kF32,
               absl::StrCat(param->name, ": master and grad must be fp32"));
  SL_CHECK_MSG(param->master.numel() == param->grad.numel(),
               absl::StrCat(param->name, ": master ", param->master.ShapeString(), " grad ",
                            param->grad.ShapeString()));
  SL_CHECK_MSG(param->master.device() == state_arena.device(),
               absl::StrCat(param->name, " is on ", DeviceName(param->master.device()),
                            ", the state arena on ", DeviceName(state_arena.device())));
  SL_CHECK_MSG(param->master.device() == Device::kCuda || param->compute.empty() ||
                   param->compute.data() == param->master.data(),
               absl::StrCat(param->name, ": on the CPU compute must alias master"));
}

}  // namespace sinklab

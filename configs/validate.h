// ValidateConfig: refuses every out-of-range value and impossible combination of a Config
// before any work starts. Each problem is one line naming the field by its full path and,
// when a text set it, where: "configs/x.textproto:4:3: model.d_model=770 is not divisible
// by model.n_heads=12". All problems are reported at once (lines joined by '\n').
#ifndef SINKLAB_CONFIGS_VALIDATE_H_
#define SINKLAB_CONFIGS_VALIDATE_H_

#include "absl/status/status.h"
#include "configs/config_source.h"
#include "configs/sinklab.pb.h"

namespace sinklab {

// InvalidArgument listing every problem of `config`; `source` supplies file:line:column.
absl::Status ValidateConfig(const Config& config, const ConfigSource& source);

// The same for a Config built in code: problems name their fields only.
absl::Status ValidateConfig(const Config& config);

}  // namespace sinklab

#endif  // SINKLAB_CONFIGS_VALIDATE_H_

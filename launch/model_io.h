// Model weights <-> safetensors (fp32 master weights under the parameter names, the resolved
// config in __metadata__["config"]). Full training checkpoints (optimizer state, RNG, loader
// position) build on this.
#ifndef SINKLAB_LAUNCH_MODEL_IO_H_
#define SINKLAB_LAUNCH_MODEL_IO_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "configs/sinklab.pb.h"
#include "layers/model.h"

namespace sinklab {

// Atomic write (temporary file, fsync, rename).
absl::Status SaveModelWeights(const Model& model, const Config& config, const std::string& path);

// The config stored in a weights file's metadata (to build a matching Model), with
// `overrides` (--set fragments) merged over it and validated.
absl::StatusOr<Config> ReadWeightsConfig(const std::string& path,
                                         const std::vector<std::string>& overrides);

// Loads every parameter; the file must hold exactly the model's parameters with their
// shapes and dtype F32 (errors name the file and the tensor).
absl::Status LoadModelWeights(const std::string& path, Model* model);

}  // namespace sinklab

#endif  // SINKLAB_LAUNCH_MODEL_IO_H_

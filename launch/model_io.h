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

// `path` is a weights file (train's model.safetensors, `export --format native`) or a
// checkpoint directory (ckpt_<step>/, launch/checkpoint.h).

// The config stored in a weights file's metadata (to build a matching Model), with
// `overrides` (--set fragments) merged over it and validated.
absl::StatusOr<Config> ReadWeightsConfig(const std::string& path,
                                         const std::vector<std::string>& overrides);

// Loads every parameter; the file must hold exactly the model's parameters with their
// shapes, as F32 or BF16 (errors name the file and the tensor). Reads `export --format
// native` output as well as train's model.safetensors.
absl::Status LoadModelWeights(const std::string& path, Model* model);

}  // namespace sinklab

#endif  // SINKLAB_LAUNCH_MODEL_IO_H_

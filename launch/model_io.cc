#include "launch/model_io.h"

#include <cstring>
#include <map>
#include <vector>

#include "absl/strings/str_cat.h"
#include "configs/config_loader.h"
#include "configs/config_writer.h"
#include "core/safetensors.h"

namespace sinklab {
namespace {
constexpr char kConfigKey[] = "config";
}  // namespace

absl::Status SaveModelWeights(const Model& model, const Config& config, const std::string& path) {
  std::vector<SafetensorsEntry> entries;
  for (const Parameter* p : model.parameters()) {
    const Tensor& t = p->master;
    std::vector<int64_t> shape;
    for (int i = 0; i < t.rank(); ++i) shape.push_back(t.dim(i));
    entries.push_back(SafetensorsEntry{p->name, DType::kF32, shape, t.data(), t.nbytes()});
  }
  return WriteSafetensors(path, entries, {{kConfigKey, ConfigToText(config)}});
}

absl::StatusOr<Config> ReadWeightsConfig(const std::string& path,
                                         const std::vector<std::string>& overrides) {
  SL_ASSIGN_OR_RETURN(SafetensorsFile file, SafetensorsFile::Read(path));
  const auto it = file.metadata().find(kConfigKey);
  if (it == file.metadata().end()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": __metadata__ has no \"config\" entry (not a sinklab weights file?)"));
  }
  return LoadConfigFromText(it->second, absl::StrCat(path, " [__metadata__.config]"),
                            overrides);
}

absl::Status LoadModelWeights(const std::string& path, Model* model) {
  SL_ASSIGN_OR_RETURN(SafetensorsFile file, SafetensorsFile::Read(path));
  if (file.names().size() != model->parameters().size()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": holds ", file.names().size(),
                                                   " tensors, the model has ",
                                                   model->parameters().size(), " parameters"));
  }
  for (Parameter* p : model->parameters()) {
    SL_ASSIGN_OR_RETURN(const SafetensorsEntry entry, file.Get(p->name));
    const Tensor& t = p->master;
    bool same_shape = entry.dtype == DType::kF32 && static_cast<int>(entry.shape.size()) == t.rank();
    for (int i = 0; same_shape && i < t.rank(); ++i) same_shape = entry.shape[i] == t.dim(i);
    if (!same_shape) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": tensor '", p->name,
                                                     "' is not F32 ", t.ShapeString(),
                                                     " as the model expects"));
    }
    std::memcpy(t.data(), entry.data, t.nbytes());
  }
  return absl::OkStatus();
}

}  // namespace sinklab

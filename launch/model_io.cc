#include "launch/model_io.h"

#include <cstring>
#include <filesystem>
#include <list>
#include <map>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "configs/config_loader.h"
#include "configs/config_writer.h"
#include "core/arena.h"
#include "core/safetensors.h"

namespace sinklab {
namespace {

constexpr char kConfigKey[] = "config";

// Where the parameters are: a weights file holds them under their names; a checkpoint
// directory's state.safetensors under "param.<name>" (launch/checkpoint.h).
struct WeightsSource {
  std::string file;
  std::string prefix;
};

WeightsSource SourceOf(const std::string& path) {
  if (std::filesystem::is_directory(path)) return {path + "/state.safetensors", "param."};
  return {path, ""};
}

}  // namespace

absl::Status SaveModelWeights(const Model& model, const Config& config, const std::string& path) {
  std::vector<SafetensorsEntry> entries;
  std::list<std::vector<char>> staging;  // host copies of device tensors
  for (const Parameter* p : model.parameters()) {
    const Tensor& t = p->master;
    std::vector<int64_t> shape;
    for (int i = 0; i < t.rank(); ++i) shape.push_back(t.dim(i));
    const void* bytes = HostBytes(t, &staging.emplace_back());
    entries.push_back(SafetensorsEntry{p->name, DType::kF32, shape, bytes, t.nbytes()});
  }
  return WriteSafetensors(path, entries, {{kConfigKey, ConfigToText(config)}});
}

absl::StatusOr<Config> ReadWeightsConfig(const std::string& path,
                                         const std::vector<std::string>& overrides) {
  const WeightsSource source = SourceOf(path);
  SL_ASSIGN_OR_RETURN(SafetensorsFile file, SafetensorsFile::Read(source.file));
  const auto it = file.metadata().find(kConfigKey);
  if (it == file.metadata().end()) {
    return absl::InvalidArgumentError(absl::StrCat(
        source.file, ": __metadata__ has no \"config\" entry (not a sinklab weights file?)"));
  }
  return LoadConfigFromText(it->second, absl::StrCat(source.file, " [__metadata__.config]"),
                            overrides);
}

absl::Status LoadModelWeights(const std::string& path, Model* model) {
  const WeightsSource source = SourceOf(path);
  SL_ASSIGN_OR_RETURN(SafetensorsFile file, SafetensorsFile::Read(source.file));
  size_t stored = 0;
  for (const std::string& name : file.names()) stored += absl::StartsWith(name, source.prefix);
  if (stored != model->parameters().size()) {
    return absl::InvalidArgumentError(absl::StrCat(source.file, ": holds ", stored,
                                                   " parameter tensors, the model has ",
                                                   model->parameters().size()));
  }
  for (Parameter* p : model->parameters()) {
    SL_ASSIGN_OR_RETURN(const SafetensorsEntry entry, file.Get(source.prefix + p->name));
    const Tensor& t = p->master;
    const bool known_dtype = entry.dtype == DType::kF32 || entry.dtype == DType::kBF16;
    bool same_shape = known_dtype && static_cast<int>(entry.shape.size()) == t.rank();
    for (int i = 0; same_shape && i < t.rank(); ++i) same_shape = entry.shape[i] == t.dim(i);
    if (!same_shape) {
      return absl::InvalidArgumentError(absl::StrCat(source.file, ": tensor '", entry.name,
                                                     "' is not F32 or BF16 ", t.ShapeString(),
                                                     " as the model expects"));
    }
    if (entry.dtype == DType::kF32) {
      CopyTensorFromHost(t, entry.data);
    } else {
      const BF16* src = static_cast<const BF16*>(entry.data);
      std::vector<float> widened(t.numel());
      for (int64_t i = 0; i < t.numel(); ++i) widened[i] = BF16ToFloat(src[i]);
      CopyTensorFromHost(t, widened.data());
    }
  }
  model->RefreshComputeCopies();
  return absl::OkStatus();
}

}  // namespace sinklab

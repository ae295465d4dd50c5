#include "launch/checkpoint.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <list>
#include <map>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "configs/config_loader.h"
#include "configs/config_writer.h"
#include "core/log.h"
#include "core/arena.h"
#include "core/safetensors.h"

namespace sinklab {
namespace {

namespace fs = std::filesystem;
constexpr char kFormat[] = "sinklab-checkpoint-v1";
constexpr char kStateFile[] = "state.safetensors";
constexpr char kParamPrefix[] = "param.";

// An entry for `t`; a device tensor is copied into `staging` (kept alive by the caller).
SafetensorsEntry EntryOf(const std::string& name, const Tensor& t,
                         std::list<std::vector<char>>* staging) {
  std::vector<int64_t> shape;
  for (int i = 0; i < t.rank(); ++i) shape.push_back(t.dim(i));
  const void* bytes = HostBytes(t, &staging->emplace_back());
  return SafetensorsEntry{name, t.dtype(), shape, bytes, t.nbytes()};
}

absl::Status FsyncPath(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0 || ::fsync(fd) != 0) {
    if (fd >= 0) ::close(fd);
    return absl::DataLossError(absl::StrCat(path, ": fsync failed: ", std::strerror(errno)));
  }
  ::close(fd);
  return absl::OkStatus();
}

// Copies the stored tensor `name` into `dst` after checking dtype and shape.
absl::Status Restore(const SafetensorsFile& file, const std::string& name, const Tensor& dst) {
  SL_ASSIGN_OR_RETURN(const SafetensorsEntry entry, file.Get(name));
  bool same = entry.dtype == dst.dtype() && static_cast<int>(entry.shape.size()) == dst.rank();
  for (int i = 0; same && i < dst.rank(); ++i) same = entry.shape[i] == dst.dim(i);
  if (!same) {
    return absl::InvalidArgumentError(absl::StrCat(file.name(), ": tensor '", name,
                                                   "' does not have the model's ",
                                                   DTypeName(dst.dtype()), " ",
                                                   dst.ShapeString()));
  }
  CopyTensorFromHost(dst, entry.data);
  return absl::OkStatus();
}

absl::StatusOr<int64_t> MetadataInt(const SafetensorsFile& file, const std::string& key) {
  const auto it = file.metadata().find(key);
  int64_t value = 0;
  if (it == file.metadata().end() || !absl::SimpleAtoi(it->second, &value) || value < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        file.name(), ": __metadata__.", key, " is missing or not a non-negative integer"));
  }
  return value;
}

// Crash-safety tests kill the process at a named point of the write (SIGKILL, like an
// out-of-memory kill or a pre-empted job) by setting SINKLAB_CRASH_POINT to that name.
void CrashPointForTests(const char* point) {
  const char* wanted = std::getenv("SINKLAB_CRASH_POINT");
  if (wanted != nullptr && std::strcmp(wanted, point) == 0) ::raise(SIGKILL);
}

}  // namespace

std::string CheckpointDir(const std::string& run_dir, int64_t step) {
  return absl::StrFormat("%s/ckpt_%08d", run_dir, step);
}

absl::Status SaveCheckpoint(const std::string& run_dir, int64_t step, const Model& model,
                            const OptimizerSet& optimizer, const Config& config, int keep) {
  const std::string final_dir = CheckpointDir(run_dir, step);
  const std::string tmp_dir = final_dir + ".tmp";
  std::error_code error;
  fs::remove_all(tmp_dir, error);
  fs::create_directories(tmp_dir, error);
  if (error) {
    return absl::PermissionDeniedError(absl::StrCat(tmp_dir, ": ", error.message()));
  }
  std::vector<SafetensorsEntry> entries;
  std::list<std::vector<char>> staging;  // host copies of device tensors
  for (const Parameter* p : model.parameters()) {
    entries.push_back(EntryOf(kParamPrefix + p->name, p->master, &staging));
  }
  for (const StateTensor& s : optimizer.StateTensors()) {
    entries.push_back(EntryOf(s.name, s.tensor, &staging));
  }
  const std::map<std::string, std::string> metadata = {
      {"format", kFormat},
      {"step", absl::StrCat(step)},
      {"optimizer_step", absl::StrCat(optimizer.step())},
      {"rng_seed", absl::StrCat(config.seed())},
      {"loader_step", absl::StrCat(step)},
      {"config", ConfigToText(config)}};
  SL_RETURN_IF_ERROR(WriteSafetensors(tmp_dir + "/" + kStateFile, entries, metadata));
  CrashPointForTests("checkpoint_before_rename");
  if (fs::exists(final_dir)) fs::remove_all(final_dir, error);  // a stale, unloadable one
  fs::rename(tmp_dir, final_dir, error);
  if (error) {
    return absl::DataLossError(absl::StrCat(final_dir, ": rename from .tmp: ", error.message()));
  }
  SL_RETURN_IF_ERROR(FsyncPath(run_dir));
  const std::vector<std::string> all = ListCheckpoints(run_dir);
  for (size_t i = 0; keep > 0 && i + keep < all.size(); ++i) fs::remove_all(all[i], error);
  return absl::OkStatus();
}

std::vector<std::string> ListCheckpoints(const std::string& run_dir) {
  std::vector<std::pair<int64_t, std::string>> found;
  std::error_code error;
  for (const fs::directory_entry& entry : fs::directory_iterator(run_dir, error)) {
    const std::string name = entry.path().filename().string();
    int64_t step = 0;
    if (entry.is_directory() && absl::StartsWith(name, "ckpt_") &&
        absl::SimpleAtoi(name.substr(5), &step) && !absl::EndsWith(name, ".tmp")) {
      found.emplace_back(step, entry.path().string());
    }
  }
  std::sort(found.begin(), found.end());
  std::vector<std::string> dirs;
  for (const auto& [step, dir] : found) dirs.push_back(dir);
  return dirs;
}

absl::StatusOr<int64_t> LoadCheckpoint(const std::string& ckpt_dir, Model* model,
                                       OptimizerSet* optimizer) {
  SL_ASSIGN_OR_RETURN(const SafetensorsFile file,
                      SafetensorsFile::Read(ckpt_dir + "/" + kStateFile));
  const auto format = file.metadata().find("format");
  if (format == file.metadata().end() || format->second != kFormat) {
    return absl::InvalidArgumentError(
        absl::StrCat(file.name(), ": __metadata__.format is not ", kFormat));
  }
  SL_ASSIGN_OR_RETURN(const int64_t step, MetadataInt(file, "step"));
  SL_ASSIGN_OR_RETURN(const int64_t optimizer_step, MetadataInt(file, "optimizer_step"));
  const std::vector<StateTensor> state = optimizer->StateTensors();
  if (file.names().size() != model->parameters().size() + state.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat(file.name(), ": holds ", file.names().size(), " tensors, expected ",
                     model->parameters().size(), " parameters + ", state.size(),
                     " optimizer state tensors (was it written with another config?)"));
  }
  for (Parameter* p : model->parameters()) {
    SL_RETURN_IF_ERROR(Restore(file, kParamPrefix + p->name, p->master));
  }
  for (const StateTensor& s : state) SL_RETURN_IF_ERROR(Restore(file, s.name, s.tensor));
  optimizer->set_step(optimizer_step);
  model->RefreshComputeCopies();
  return step;
}

absl::StatusOr<int64_t> LoadLatestCheckpoint(const std::string& run_dir, Model* model,
                                             OptimizerSet* optimizer) {
  const std::vector<std::string> dirs = ListCheckpoints(run_dir);
  if (dirs.empty()) {
    return absl::NotFoundError(absl::StrCat(run_dir, ": no checkpoint (ckpt_*/) to resume from"));
  }
  absl::Status last_error;
  for (auto it = dirs.rbegin(); it != dirs.rend(); ++it) {
    absl::StatusOr<int64_t> step = LoadCheckpoint(*it, model, optimizer);
    if (step.ok()) return step;
    last_error = step.status();
    LogWarning(absl::StrCat("skipping unloadable checkpoint: ", last_error.message()));
  }
  return absl::DataLossError(
      absl::StrCat(run_dir, ": no loadable checkpoint; the last error: ", last_error.message()));
}

absl::StatusOr<Config> ReadCheckpointConfig(const std::string& ckpt_dir,
                                            const std::vector<std::string>& overrides) {
  SL_ASSIGN_OR_RETURN(const SafetensorsFile file,
                      SafetensorsFile::Read(ckpt_dir + "/" + kStateFile));
  const auto it = file.metadata().find("config");
  if (it == file.metadata().end()) {
    return absl::InvalidArgumentError(absl::StrCat(file.name(), ": __metadata__ has no config"));
  }
  return LoadConfigFromText(it->second, absl::StrCat(file.name(), " [__metadata__.config]"),
                            overrides);
}

}  // namespace sinklab

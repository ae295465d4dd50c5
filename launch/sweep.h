// Sweeps: a base config and axes of named overrides (the `Sweep` message of
// configs/sinklab.proto documents the file), expanded into the cross product of runs. Running
// them over groups of MPI ranks is launch/sweep_runner.h.
#ifndef SINKLAB_LAUNCH_SWEEP_H_
#define SINKLAB_LAUNCH_SWEEP_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "configs/sinklab.pb.h"
#include "google/protobuf/text_format.h"

namespace sinklab {

struct SweepRun {
  std::string label;    // the values' labels joined by '_', e.g. "softmax1_muon"
  std::string what;     // for logs: "attention=softmax1 optimizer=muon"
  std::string run_dir;  // <train.run_root>/<sweep name>/<label>
  Config config;        // merged and validated; name "<sweep name>_<label>"
};

// A parsed sweep file.
struct SweepFile {
  std::string path;  // names it in errors; without Sweep.name its stem names the sweep
  Sweep sweep;
  // Where each field was written, for errors (null for a Sweep built in code).
  std::shared_ptr<google::protobuf::TextFormat::ParseInfoTree> locations;
};

// Reads and parses a sweep file: InvalidArgument with file:line:column on a syntax error or
// an unknown field (also inside the override blocks, which are `Config` messages);
// NotFound etc. when it cannot be read.
absl::StatusOr<SweepFile> LoadSweep(const std::string& path);
// The same on `text`, named `path` in errors.
absl::StatusOr<SweepFile> ParseSweepText(const std::string& text, const std::string& path);

// The runs of a sweep, first axis varying slowest. Each run's config is the base config
// file, Sweep.overrides, the run's axis values in axis order, then `overrides` (the command
// line's --set), merged and validated. InvalidArgument naming the sweep file (with
// line:column where the error sits in its text) for: no base_config, no axis, an axis
// without a name or values, a label that is empty, not [A-Za-z0-9.+-]+ or repeated in its
// axis, a Sweep.name that cannot be a folder name; a run whose merged config is invalid is
// named by its label, with the origin of each merged fragment.
absl::StatusOr<std::vector<SweepRun>> ExpandSweep(const SweepFile& file,
                                                  const std::vector<std::string>& overrides);

}  // namespace sinklab

#endif  // SINKLAB_LAUNCH_SWEEP_H_

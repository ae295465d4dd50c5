// The run directory: <run_root>/<name>/ with config.textproto and metrics.jsonl.
#ifndef SINKLAB_LAUNCH_RUN_DIR_H_
#define SINKLAB_LAUNCH_RUN_DIR_H_

#include <string>

#include "absl/status/statusor.h"

namespace sinklab {

// Creates a new run directory and returns its path: <root>/<name>, or <root>/<name>_1,
// _2, ... when that exists already (an earlier run is never overwritten).
absl::StatusOr<std::string> CreateRunDir(const std::string& root, const std::string& name);

}  // namespace sinklab

#endif  // SINKLAB_LAUNCH_RUN_DIR_H_

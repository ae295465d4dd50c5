// Command-line pieces that Abseil flags cannot express: `--set` may be repeated, and each
// occurrence is a text-proto fragment (which may contain commas), so they are taken out of
// argv before absl::ParseCommandLine sees it.
#ifndef SINKLAB_LAUNCH_CLI_ARGS_H_
#define SINKLAB_LAUNCH_CLI_ARGS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace sinklab {

struct SplitArgs {
  std::vector<std::string> overrides;  // the --set fragments, in order
  std::vector<std::string> rest;       // argv without them (argv[0] kept)
};

// Accepts `--set FRAGMENT` and `--set=FRAGMENT`; a trailing `--set` with no value is an error.
absl::StatusOr<SplitArgs> ExtractSetOverrides(int argc, char** argv);

}  // namespace sinklab

#endif  // SINKLAB_LAUNCH_CLI_ARGS_H_

#include "launch/cli_args.h"

#include "absl/strings/match.h"

namespace sinklab {

absl::StatusOr<SplitArgs> ExtractSetOverrides(int argc, char** argv) {
  SplitArgs out;
  for (int i = 0; i < argc; ++i) {
    const std::string arg = argv[i];
    if (i > 0 && (arg == "--set" || arg == "-set")) {
      if (i + 1 >= argc) {
        return absl::InvalidArgumentError("--set: missing value (a text-proto fragment)");
      }
      out.overrides.push_back(argv[++i]);
    } else if (i > 0 && (absl::StartsWith(arg, "--set=") || absl::StartsWith(arg, "-set="))) {
      out.overrides.push_back(arg.substr(arg.find('=') + 1));
    } else {
      out.rest.push_back(arg);
    }
  }
  return out;
}

}  // namespace sinklab

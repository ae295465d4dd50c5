#include "launch/run_dir.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "core/file_util.h"
#include "core/status.h"

namespace sinklab {

absl::StatusOr<std::string> CreateRunDir(const std::string& root, const std::string& name) {
  if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..") {
    return absl::InvalidArgumentError(
        absl::StrCat("name: '", name, "' is not a valid run directory name"));
  }
  SL_RETURN_IF_ERROR(MakeDirs(root));
  for (int suffix = 0; suffix < 10000; ++suffix) {
    const std::string path =
        suffix == 0 ? absl::StrCat(root, "/", name) : absl::StrCat(root, "/", name, "_", suffix);
    // mkdir is atomic: exactly one process creates a given directory.
    if (::mkdir(path.c_str(), 0755) == 0) return path;
    if (errno != EEXIST) {
      return absl::PermissionDeniedError(
          absl::StrCat(path, ": cannot create run directory: ", std::strerror(errno)));
    }
  }
  return absl::ResourceExhaustedError(absl::StrCat(root, "/", name, ": too many runs named so"));
}

}  // namespace sinklab

// Small file-system helpers with errors that name the path.
#ifndef SINKLAB_CORE_FILE_UTIL_H_
#define SINKLAB_CORE_FILE_UTIL_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace sinklab {

absl::StatusOr<std::string> ReadFileToString(const std::string& path);
// Writes `path + ".tmp"`, fsyncs it, renames it over `path`: readers see the old or the new
// file, never a partial one.
absl::Status WriteFileAtomically(const std::string& path, const std::string& content);
// mkdir -p.
absl::Status MakeDirs(const std::string& path);

}  // namespace sinklab

#endif  // SINKLAB_CORE_FILE_UTIL_H_

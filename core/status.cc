#include "core/status.h"

#include <cstdio>
#include <cstdlib>

#include "absl/strings/str_cat.h"

namespace sinklab {

void CheckFailed(const char* file, int line, const char* what, const std::string& detail) {
  std::fprintf(stderr, "%s:%d: CHECK failed: %s%s%s\n", file, line, what,
               detail.empty() ? "" : ": ", detail.c_str());
  std::fflush(stderr);
  std::abort();
}

absl::Status Annotate(const absl::Status& status, const std::string& prefix) {
  if (status.ok()) return status;
  return absl::Status(status.code(), absl::StrCat(prefix, ": ", status.message()));
}

}  // namespace sinklab

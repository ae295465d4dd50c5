#include "core/cuda_arch.h"

#include <optional>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace sinklab {
namespace {

// Whether one entry ("90a", "80-real", ...) runs on compute capability `cc` (10 major +
// minor); nullopt when the entry is not a number with an optional suffix.
std::optional<bool> EntryRunsOn(absl::string_view entry, int cc) {
  bool code = true, ptx = true;  // "-real": code only; "-virtual": PTX only
  if (absl::ConsumeSuffix(&entry, "-real")) {
    ptx = false;
  } else if (absl::ConsumeSuffix(&entry, "-virtual")) {
    code = false;
  }
  char variant = 0;  // 'a': arch-specific, 'f': family-specific
  if (!entry.empty() && (entry.back() == 'a' || entry.back() == 'f')) {
    variant = entry.back();
    entry.remove_suffix(1);
  }
  int arch = 0;
  if (!absl::SimpleAtoi(entry, &arch) || arch < 10) return std::nullopt;
  const bool same_major = cc / 10 == arch / 10, minor_at_least = cc % 10 >= arch % 10;
  if (variant == 'a') return cc == arch;
  if (variant == 'f') return same_major && minor_at_least;
  return (code && same_major && minor_at_least) || (ptx && cc >= arch);
}

}  // namespace

bool CudaArchsRunOn(absl::string_view archs, int major, int minor) {
  const int cc = 10 * major + minor;
  bool any = false;
  for (absl::string_view entry : absl::StrSplit(archs, absl::ByAnyChar(";, "), absl::SkipEmpty())) {
    const std::optional<bool> runs = EntryRunsOn(entry, cc);
    if (!runs.has_value()) return true;
    any = any || *runs;
  }
  return any || archs.find_first_not_of(";, ") == absl::string_view::npos;
}

std::string NoCudaImageMessage(int gpu, absl::string_view gpu_name, int major, int minor,
                               absl::string_view archs) {
  return absl::StrCat("GPU ", gpu, " (", gpu_name, ") has compute capability ", major, ".", minor,
                      ", and this binary's CUDA code was built for architectures ", archs,
                      " only, none of which runs on it; rebuild for it with CUDA_ARCHS=", major,
                      minor, " ./setup.sh (docs/GPU.md)");
}

}  // namespace sinklab

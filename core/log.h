// The one logging path: timestamped lines on stderr (progress lines go to stdout).
// Abseil 20220623 (Debian 12) has no absl/log, so this is ours; messages are built
// with absl::StrCat / absl::StrFormat at the call site.
#ifndef SINKLAB_CORE_LOG_H_
#define SINKLAB_CORE_LOG_H_

#include "absl/strings/string_view.h"

namespace sinklab {

enum class LogLevel { kInfo, kWarning, kError };

void Log(LogLevel level, absl::string_view message);
inline void LogInfo(absl::string_view message) { Log(LogLevel::kInfo, message); }
inline void LogWarning(absl::string_view message) { Log(LogLevel::kWarning, message); }
inline void LogError(absl::string_view message) { Log(LogLevel::kError, message); }

// Silences kInfo lines (e.g. on non-zero ranks, or in tests).
void SetLogQuiet(bool quiet);

}  // namespace sinklab

#endif  // SINKLAB_CORE_LOG_H_

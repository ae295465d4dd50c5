#include "core/log.h"

#include <atomic>
#include <cstdio>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace sinklab {
namespace {
std::atomic<bool> g_quiet{false};

const char* LevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kInfo: return "I";
    case LogLevel::kWarning: return "W";
    case LogLevel::kError: return "E";
  }
  return "?";
}
}  // namespace

void SetLogQuiet(bool quiet) { g_quiet = quiet; }

void Log(LogLevel level, absl::string_view message) {
  if (level == LogLevel::kInfo && g_quiet) return;
  const std::string stamp = absl::FormatTime("%H:%M:%S", absl::Now(), absl::LocalTimeZone());
  std::fprintf(stderr, "%s %s %.*s\n", LevelName(level), stamp.c_str(),
               static_cast<int>(message.size()), message.data());
  std::fflush(stderr);
}

}  // namespace sinklab

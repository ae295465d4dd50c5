#include "launch/progress.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace sinklab {

std::string FormatDuration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const int64_t s = static_cast<int64_t>(std::llround(seconds));
  if (s < 60) return absl::StrCat(s, "s");
  if (s < 3600) return absl::StrFormat("%dm%02ds", s / 60, s % 60);
  return absl::StrFormat("%dh%02dm", s / 3600, (s % 3600) / 60);
}

std::string FormatProgress(const ProgressInfo& info) {
  const int width = static_cast<int>(absl::StrCat(info.total_steps).size());
  const std::string rate = info.tokens_per_s >= 1e3
                               ? absl::StrFormat("%.1fk", info.tokens_per_s / 1e3)
                               : absl::StrFormat("%.0f", info.tokens_per_s);
  return absl::StrFormat("step %*d/%d | loss %.4f | lr %.2e | gnorm %.2f | %s tok/s | ETA %s",
                         width, info.step + 1, info.total_steps, info.loss, info.lr,
                         info.grad_norm, rate, FormatDuration(info.eta_s));
}

}  // namespace sinklab

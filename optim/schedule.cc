#include "optim/schedule.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "core/status.h"

namespace sinklab {
namespace {

constexpr double kPi = 3.14159265358979323846;

double Clamp01(double x) { return std::min(1.0, std::max(0.0, x)); }

}  // namespace

int64_t WsdDecayStart(const OptimConfig& config, int64_t total_steps) {
  const int64_t warmup = config.warmup_steps();
  const int64_t decay_steps =
      std::max<int64_t>(1, std::llround(static_cast<double>(config.decay_fraction()) *
                                        static_cast<double>(total_steps)));
  return std::max(warmup, total_steps - decay_steps);
}

namespace {

// The schedule of schedule.h with peak `peak`, in double.
double ScheduleValue(const OptimConfig& config, double peak, int64_t step,
                     int64_t total_steps) {
  SL_CHECK_MSG(step >= 0 && total_steps >= 1,
               absl::StrCat("step ", step, " of ", total_steps, " steps"));
  SL_CHECK_MSG(config.warmup_steps() >= 0,
               absl::StrCat("optim.warmup_steps=", config.warmup_steps()));
  const double floor = peak * config.min_lr_ratio();
  const int64_t warmup = config.warmup_steps();
  if (step < warmup) {
    return peak * static_cast<double>(step + 1) / warmup;
  }
  switch (config.schedule()) {
    case OptimConfig::COSINE: {
      const int64_t decay_steps = std::max<int64_t>(1, total_steps - 1 - warmup);
      const double q = Clamp01(static_cast<double>(step - warmup) / decay_steps);
      // SGDR (Loshchilov & Hutter 2017, eq. 5) with a single cycle.
      return floor + (peak - floor) * 0.5 * (1.0 + std::cos(kPi * q));
    }
    case OptimConfig::WSD: {
      const int64_t decay_start = WsdDecayStart(config, total_steps);
      if (step < decay_start) return peak;
      const int64_t decay_steps = std::max<int64_t>(1, total_steps - decay_start);
      const double q = Clamp01(static_cast<double>(step - decay_start + 1) / decay_steps);
      // MiniCPM (Hu et al. 2024, sec. 4.1) decay phase, linear form.
      return peak - (peak - floor) * q;
    }
    case OptimConfig::CONSTANT:
      return peak;
  }
  SL_CHECK_MSG(false, absl::StrCat("unknown optim.schedule ", config.schedule()));
  return 0.0;
}

}  // namespace

float LearningRate(const OptimConfig& config, int64_t step, int64_t total_steps) {
  return static_cast<float>(ScheduleValue(config, config.lr(), step, total_steps));
}

float LrMultiplier(const OptimConfig& config, int64_t step, int64_t total_steps) {
  return static_cast<float>(ScheduleValue(config, 1.0, step, total_steps));
}

}  // namespace sinklab

// Learning-rate schedules (OptimConfig.schedule). Steps are 0-based here: step 0 is the
// first optimizer update, total_steps - 1 the last (train.steps = total_steps). With peak
// lr = config.lr(), floor = lr * min_lr_ratio and W = warmup_steps:
//
//   warmup (all schedules), step < W:   lr * (step + 1) / W    (lr/W at step 0, lr at W - 1)
//   COSINE, step >= W:  floor + (lr - floor) * (1 + cos(pi * q)) / 2,
//                       q = (step - W) / (total_steps - 1 - W), clamped to [0, 1]:
//                       lr at step W, floor at the last step (Loshchilov & Hutter 2017,
//                       SGDR, one cycle without restarts)
//   WSD, step >= W:     lr on the plateau, then over the last D = round(decay_fraction *
//                       total_steps) steps (at least 1; never starting before W) a linear
//                       decay lr - (lr - floor) * (step - S + 1) / D, S = total_steps - D: the
//                       first decay step S is already below lr, the last step is the floor
//                       (Hu et al. 2024, MiniCPM, warmup-stable-decay)
//   CONSTANT, step >= W: lr
//
// Steps past the end keep the last value. With W = 0 there is no warmup.
#ifndef SINKLAB_OPTIM_SCHEDULE_H_
#define SINKLAB_OPTIM_SCHEDULE_H_

#include <cstdint>

#include "configs/sinklab.pb.h"

namespace sinklab {

// The learning rate of 0-based `step` of a run of `total_steps` (>= 1) updates.
float LearningRate(const OptimConfig& config, int64_t step, int64_t total_steps);

// The same schedule with peak 1: the factor every parameter group's peak lr is multiplied
// by (AdamW's optim.lr, Muon's own lr; optim/optimizer_set.h). LearningRate equals
// config.lr() * LrMultiplier up to float rounding.
float LrMultiplier(const OptimConfig& config, int64_t step, int64_t total_steps);

// WSD: the first 0-based step of the decay phase, S = total_steps - D (see above).
int64_t WsdDecayStart(const OptimConfig& config, int64_t total_steps);

}  // namespace sinklab

#endif  // SINKLAB_OPTIM_SCHEDULE_H_

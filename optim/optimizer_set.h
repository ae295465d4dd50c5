// OptimizerSet: what the trainer drives. Routes the model's parameters into groups
// (optim/param_groups.h: AdamW for vectors/embeddings/head, Muon or AdamW for the hidden
// matrices, param_override exceptions) and owns one AdamW over all AdamW groups and one Muon
// over all Muon groups (either absent when it has no parameter).
//
// Learning rate: Step takes the schedule's multiplier f = LrMultiplier(optim, step, total)
// (optim/schedule.h) and gives each group its peak lr times f: AdamW optim.lr * f, Muon
// MuonLearningRate(optim) * f. With matrix_optimizer = ADAMW and no override this is the
// plain AdamW of optim/adamw.h over every parameter.
//
// Statistics (only when set_record_stats(true) was called before Step; LastUpdateStats):
//   "update_rms/<group name>": sqrt(sum (p_new - p_old)^2 / count) over the group's elements
//   "muon_sigma_max/<param name>": power-iteration estimate of the largest singular value
//                                  of the orthogonalized update X (before scale and lr).
#ifndef SINKLAB_OPTIM_OPTIMIZER_SET_H_
#define SINKLAB_OPTIM_OPTIMIZER_SET_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "configs/sinklab.pb.h"
#include "core/arena.h"
#include "layers/parameter.h"
#include "optim/adamw.h"
#include "optim/muon.h"
#include "optim/optimizer.h"
#include "optim/param_groups.h"

namespace sinklab {
namespace cuda_optim {
class MultiTensorGradNorm;
class SideStream;
}  // namespace cuda_optim

class OptimizerSet {
 public:
  // Routes `params` and allocates every optimizer's state and scratch from `state_arena`
  // (so call it before the arena is sealed). InvalidArgument from routing (e.g. Muon for a
  // 1-D parameter), naming the parameter and the override. `muon_sharding` (GPU data
  // parallelism; optim/muon.h) splits Muon's orthogonalization across ranks.
  static absl::StatusOr<std::unique_ptr<OptimizerSet>> Create(
      const OptimConfig& config, const std::vector<Parameter*>& params, Arena* state_arena,
      MuonSharding muon_sharding = MuonSharding());

  // Global-norm clipping of every parameter's gradient to max_norm (ClipGradNorm's rule,
  // optim/clip.h); writes the norm before clipping to norm_out ([1] f32 on the parameters'
  // device). On the CPU this is ClipGradNorm over the parameters in Create's order. On a
  // GPU the norm is one multi-tensor reduction left on the device (no host read) with the
  // clip factor: the grads are left as they are and the next Step multiplies them by the
  // factor as it reads them (the same arithmetic as scaling them first), so nothing but
  // that Step may read the grads in between.
  void ClipGradients(float max_norm, const Tensor& norm_out);
  // The same, the norm returned to the host (synchronizes on a GPU).
  float ClipGradients(float max_norm);

  // One update of every parameter; `schedule_factor` = LrMultiplier(...) of this step,
  // `step` 1-based; applies (then forgets) a clip factor from ClipGradients. Allocates
  // nothing. On a GPU with both optimizers, AdamW runs on its own stream beside Muon (its
  // memory-bound update overlaps Muon's Newton-Schulz products) and the default stream
  // waits for it before Step returns, so everything queued later sees every update; the
  // results are the sequential ones bit for bit (disjoint buffers, the same kernels).
  void Step(float schedule_factor, int64_t step);

  // AdamW's state tensors ("adamw.m.*", "adamw.v.*"), then Muon's ("muon.m.*").
  std::vector<StateTensor> StateTensors() const;

  // DescribeParamGroups of the groups: which parameter goes where, with lr and decay.
  std::vector<std::string> Describe(int line_width = 100) const;

  // The step of the last Step (0 before); resume restores it after refilling StateTensors.
  int64_t step() const { return step_; }
  void set_step(int64_t step);

  // Every parameter whose `compute` is a separate copy (bf16 on a GPU) gets it refreshed
  // from its master. Anything that rewrites masters calls it (resume); Step refreshes only
  // the copies its optimizers did not write themselves (writes_compute_copies).
  void RefreshComputeCopies();

  // Turns statistics on or off for the following Steps (e.g. on for stats steps only).
  void set_record_stats(bool record);
  // Statistics of the last Step (names in the file comment); empty when it ran without
  // record_stats.
  std::map<std::string, double> LastUpdateStats() const;

  const std::vector<ParamGroup>& groups() const { return groups_; }
  AdamW* adamw() const { return adamw_.get(); }  // null when no AdamW group
  Muon* muon() const { return muon_.get(); }     // null when no Muon group

 private:
  OptimizerSet() = default;

  // Where a group's parameters sit in its optimizer's parameter list.
  struct GroupSpan {
    size_t begin = 0, end = 0;
  };

  // Refreshes the compute copies of the groups whose optimizer does not write them
  // (every group with `all`).
  void RefreshCopies(bool all);

  std::vector<Parameter*> params_;  // Create's, in its order
  std::vector<ParamGroup> groups_;
  std::vector<GroupSpan> spans_;            // per group
  float adamw_lr_ = 0.0f, muon_lr_ = 0.0f;  // peak lrs
  std::unique_ptr<AdamW> adamw_;
  std::unique_ptr<Muon> muon_;
  int64_t step_ = 0;
  bool record_stats_ = false;
  bool last_step_recorded_ = false;
  // GPU parameters: the multi-tensor norm and its device clip factor (null on the CPU);
  // clip_pending_ while a ClipGradients factor awaits its Step.
  std::shared_ptr<cuda_optim::MultiTensorGradNorm> grad_norm_;
  bool clip_pending_ = false;
  // GPU with both AdamW and Muon: AdamW's stream (null otherwise).
  std::shared_ptr<cuda_optim::SideStream> adamw_stream_;
};

}  // namespace sinklab

#endif  // SINKLAB_OPTIM_OPTIMIZER_SET_H_

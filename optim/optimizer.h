// Optimizer: the interface the trainer drives, one instance per parameter group family
// (AdamW for vectors/embeddings/head; Muon or AdamW for hidden matrices, DESIGN.md section 2).
//
// Device contract: an optimizer updates `Parameter::master` (fp32) from `Parameter::grad`
// (fp32). On the CPU `compute` aliases `master`, so nothing else is needed after Step; a
// device backend whose `compute` is a separate (bf16) copy must refresh it after every Step.
#ifndef SINKLAB_OPTIM_OPTIMIZER_H_
#define SINKLAB_OPTIM_OPTIMIZER_H_

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "core/arena.h"
#include "core/tensor.h"
#include "layers/parameter.h"

namespace sinklab {

// One named tensor of optimizer state, e.g. {"adamw.m.layers.0.attn.wq", m}; a checkpoint
// writes it under this name and restores into the same tensor.
struct StateTensor {
  std::string name;
  Tensor tensor;
};

// CHECKs what every optimizer's constructor needs of a parameter: not null, a name not in
// `names` (then added), fp32 master and grad of one numel on the state arena's device, and
// compute aliasing master on the CPU (on a GPU the caller refreshes the bf16 copy:
// OptimizerSet::Step). `optimizer` names the optimizer in the messages.
void CheckOptimizerParameter(const Parameter* param, const Arena& state_arena,
                             const char* optimizer, std::set<std::string>* names);

class Optimizer {
 public:
  virtual ~Optimizer() = default;

  // One update of every parameter with learning rate `lr` (the schedule's value for this
  // step). `step` is 1-based (the first update is step 1) and is what bias corrections use.
  virtual void Step(float lr, int64_t step) = 0;

  // Every state tensor (views into the optimizer's arena), in a fixed order.
  virtual std::vector<StateTensor> StateTensors() const = 0;

  // The `step` of the last Step call (0 before the first); checkpoints save it and resume
  // restores it with set_step after refilling StateTensors.
  int64_t step() const { return step_; }
  void set_step(int64_t step) { step_ = step; }

  // Statistics for optimizer studies, off by default: while on, each Step also sums
  // (p_new - p_old)^2 over every parameter (in double, deterministic; no extra memory).
  void set_record_stats(bool record) { record_stats_ = record; }
  bool record_stats() const { return record_stats_; }
  // Per parameter, in the optimizer's parameter order: sum over its elements of
  // (p_new - p_old)^2 of the last Step, which must have run with record_stats on.
  const std::vector<double>& last_update_sum_squares() const { return update_sum_squares_; }

  // GPU optimizers only: a device float that every gradient is multiplied by as the
  // following Steps read it (the clip factor OptimizerSet::ClipGradients leaves on the
  // device: the CPU's grad *= factor, folded into the update); null (the default) for none.
  // A CPU optimizer CHECKs that it is null.
  void set_grad_scale(const float* device_scale) { grad_scale_ = device_scale; }
  // True when Step also writes every parameter's separate (bf16) compute copy, so the
  // caller need not refresh it (the GPU AdamW and Muon).
  virtual bool writes_compute_copies() const { return false; }

 protected:
  int64_t step_ = 0;
  bool record_stats_ = false;
  const float* grad_scale_ = nullptr;
  std::vector<double> update_sum_squares_;  // sized by the derived constructor
};

}  // namespace sinklab

#endif  // SINKLAB_OPTIM_OPTIMIZER_H_

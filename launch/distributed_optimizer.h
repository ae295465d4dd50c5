// DistributedOptimizer: what the trainer drives after the backward passes of a step, on any
// number of data-parallel ranks (DESIGN.md section 8): average the gradients across ranks,
// clip them by the global norm, update, and leave every rank with the same parameters.
//
// One rank without ZeRO-1: exactly the single-process path (OptimizerSet).
// Otherwise, with the parameters routed as OptimizerSet routes them (optim/param_groups.h):
//  - gradients: each rank's grads hold its share of the global-batch mean (Backward with
//    loss scale 1 / (world x accumulation)), so a sum across ranks is the mean. They are
//    summed by all-reduce in buckets of distributed.bucket_mb, packed in reverse parameter
//    order (the order the backward pass finishes them, which is what a GPU implementation
//    overlapping the reduction with the backward pass needs; on the CPU a bucket is reduced
//    after the last micro-batch's backward, with no overlap). Under ZeRO-1 the AdamW
//    parameters' gradients are reduce-scattered instead (optim/sharded_adamw.h).
//  - global norm: computed on every rank from the full averaged gradients, or under ZeRO-1
//    as a sum over ranks of the squares each owns (its AdamW shard, its Muon matrices).
//  - update: AdamW on every rank (replicated), or on each rank's shard under ZeRO-1; Muon
//    matrices each by their owner rank, shared by all-gather (optim/distributed_muon.h).
//  - on GPUs (CUDA parameters): gradients summed in place by NCCL all-reduce
//    (core/comm_nccl.h) in PlanBuckets' buckets, a bucket's slices in one NCCL group (one
//    launch, no packing), bucket after bucket on the NCCL stream. During the last micro-batch's
//    backward pass (GradsReadyHook) each bucket starts as soon as the backward pass has finished
//    its gradients, behind an event on the backend's stream, so the reduction overlaps the rest of
//    the backward pass; without the hook they start after it. Then every rank runs the
//    single-process OptimizerSet (ClipGradients, replicated AdamW and Muon momentum) except
//    that Muon's Newton-Schulz is split: rank r orthogonalizes slice r of every shape group
//    and an NCCL all-gather of the bf16 results (MuonSharding, optim/cuda/multi_tensor_gpu.h)
//    gives every rank every update, so the ranks stay identical. Under ZeRO-1 only the Muon
//    gradients go through the buckets; the AdamW ones are reduce-scattered after the
//    backward pass into a ShardedAdamW on the GPU (the copies on the NCCL stream), whose
//    updated shards are all-gathered and converted to the bf16 compute copies; Muon is that
//    same sharded Muon. SINKLAB_FORCE_NCCL=1 takes this path on one rank too (tests; the
//    collectives are then copies).
//  - checkpoints hold the full state, as a single-process run writes it (launch/checkpoint.h,
//    so a run can resume on another number of ranks): the shards and the Muon momenta are
//    gathered to rank 0, which writes; on resume every rank reads the checkpoint and keeps
//    its part. The gather and the read use a temporary full-size OptimizerSet.
#ifndef SINKLAB_LAUNCH_DISTRIBUTED_OPTIMIZER_H_
#define SINKLAB_LAUNCH_DISTRIBUTED_OPTIMIZER_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "configs/sinklab.pb.h"
#include "core/arena.h"
#include "core/comm.h"
#include "launch/distributed.h"
#include "layers/model.h"
#include "optim/adamw.h"
#include "optim/distributed_muon.h"
#include "optim/flat_view.h"
#include "optim/muon.h"
#include "optim/optimizer_set.h"
#include "optim/param_groups.h"
#include "optim/sharded_adamw.h"

struct CUstream_st;  // cudaStream_t is CUstream_st* (cuda_runtime.h)
struct CUevent_st;   // cudaEvent_t

namespace sinklab {

class NcclCommunicator;  // core/comm_nccl.h (built with SINKLAB_NCCL)

class DistributedOptimizer {
 public:
  // `params` are the model's (every rank's model is built from the same config and seed);
  // `comm` (not owned) the data-parallel group. State and scratch come from `arena` (before
  // it is sealed). InvalidArgument from routing, as OptimizerSet::Create.
  static absl::StatusOr<std::unique_ptr<DistributedOptimizer>> Create(
      const Config& config, const std::vector<Parameter*>& params, Communicator* comm,
      Arena* arena);
  ~DistributedOptimizer();

  // The hook to pass to the last micro-batch's Model::Backward of a step: on GPUs it starts
  // each gradient bucket's all-reduce as soon as its gradients are final (no host wait).
  // Null where there is nothing to overlap (the CPU, one rank without SINKLAB_FORCE_NCCL).
  // ReduceAndClipGradients finishes what the hook did not start.
  Model::GradsReadyFn GradsReadyHook(Backend* backend);

  // Collective: gradients summed across ranks, then clipped to optim.grad_clip by the global
  // norm (torch.nn.utils.clip_grad_norm_'s rule, optim/clip.h). Writes the norm before
  // clipping (the same on every rank) to norm_out ([1] f32 on the parameters' device); a
  // non-finite norm leaves the gradients alone. Where every rank holds the whole optimizer
  // (one process; NCCL without ZeRO-1) the norm stays on the device (no host read) and, on a
  // GPU, the clip factor is applied by the next Step as it reads the gradients
  // (OptimizerSet::ClipGradients), so only Step may read them in between. ZeRO-1 and CPU
  // ranks add their sums of squares on the host.
  void ReduceAndClipGradients(const Tensor& norm_out);

  // Collective: one update; `schedule_factor` = LrMultiplier(...), `step` 1-based.
  void Step(float schedule_factor, int64_t step);

  // Statistics for the following Steps (OptimizerSet's names and meaning). LastUpdateStats
  // is collective after a recorded Step: call it on every rank.
  void set_record_stats(bool record);
  std::map<std::string, double> LastUpdateStats();

  // Parameter groups, and how the work is split across ranks.
  std::vector<std::string> Describe() const;

  // Collective: the checkpoint of `step` (launch/checkpoint.h's format), written by rank 0.
  absl::Status SaveCheckpoint(const std::string& run_dir, int64_t step, const Model& model,
                              const Config& config);
  // Every rank loads the newest loadable checkpoint of `run_dir` (into `model` and this
  // optimizer) and returns its step; InvalidArgument when ranks found different steps.
  absl::StatusOr<int64_t> LoadLatestCheckpoint(const std::string& run_dir, Model* model);

 private:
  DistributedOptimizer() = default;

  // Decoupled decay coefficients per parameter, as routed.
  struct Decays {
    std::vector<float> adamw, muon;
  };
  // groups_, adamw_params_, muon_params_ and the learning rates from the config's routing.
  absl::StatusOr<Decays> RouteGroups(const Config& config);
  // Indices into params_ of the gradients summed by all-reduce, in reverse model order:
  // every one, or under ZeRO-1 the Muon ones.
  std::vector<size_t> AllReducedParams(bool zero1) const;

  // The OptimizerSet path: one rank without ZeRO-1, or GPUs without ZeRO-1.
  bool single_process() const { return set_ != nullptr; }
  absl::Status InitGpuDataParallel(const Config& config, Arena* arena);
  // The buckets whose gradients are all in params_[first_final, end) and not yet started,
  // in order, after the work queued on `producer` (the backend's stream) so far.
  void EnqueueReadyBuckets(size_t first_final, CUstream_st* producer);
  // The buckets not started during the backward pass, then waits for every sum.
  void AllReduceBucketsOnGpu();
  // Enqueues bucket `index`'s in-place all-reduces on the NCCL stream (no wait).
  void ReduceGpuBucket(size_t index);
  // GPUs under ZeRO-1: Muon, the sharded AdamW, the all-gather and the bf16 copies.
  void StepGpuZero1(float schedule_factor, int64_t step);
  Device params_device() const;
  void SynchronizeGpu() const;  // cudaDeviceSynchronize on GPUs; nothing on the CPU
  // The temporary full-size optimizer that checkpoints read and write, and its state
  // tensors per parameter in this optimizer's order.
  struct FullState;
  absl::StatusOr<std::unique_ptr<FullState>> MakeFullState(Arena* arena) const;
  void AllReduceBuckets();
  // ReduceAndClipGradients with several ranks: returns the norm (host sums of squares).
  float ReduceAndClipAcrossRanks(float max_norm);
  // InvalidArgument when rank 0 resumed another step (do the ranks see one run directory?).
  absl::Status CheckSameStepAsRank0(const std::string& run_dir, int64_t step);
  void set_step(int64_t step);

  std::unique_ptr<OptimizerSet> set_;  // one rank or GPUs, without ZeRO-1; null otherwise

  // GPU data parallel (null / empty otherwise).
  std::unique_ptr<Communicator> nccl_owned_;  // the NcclCommunicator over comm_
  NcclCommunicator* nccl_ = nullptr;          // nccl_owned_, as what it is
  std::vector<Tensor> gpu_grads_;             // the all-reduced grads, reverse parameter order
  std::vector<size_t> gpu_grad_param_;        // gpu_grads_[j] is params_[gpu_grad_param_[j]]'s
  std::vector<Bucket> gpu_buckets_;           // PlanBuckets over gpu_grads_
  std::vector<size_t> bucket_first_param_;    // bucket b is final once params_[this, end) are
  size_t next_bucket_ = 0;                    // the first bucket not started in this step
  CUevent_st* grads_ready_ = nullptr;         // recorded on the backend's stream by the hook
  int64_t largest_gpu_bucket_ = 0;            // values (Describe)
  std::unique_ptr<Muon> gpu_muon_;            // GPUs under ZeRO-1 (sharded Newton-Schulz)

  Communicator* comm_ = nullptr;
  OptimConfig optim_;
  std::vector<Parameter*> params_;  // the model's, in model order
  std::vector<ParamGroup> groups_;
  std::vector<Parameter*> adamw_params_, muon_params_;  // OptimizerSet's order
  float adamw_lr_ = 0.0f, muon_lr_ = 0.0f;
  std::unique_ptr<AdamW> adamw_;           // replicated AdamW (no ZeRO-1)
  std::unique_ptr<ShardedAdamW> sharded_;  // ZeRO-1
  std::unique_ptr<DistributedMuon> muon_;
  FlatView all_reduced_grads_;  // what the all-reduce sums, reverse parameter order
  Tensor bucket_;               // [bucket elements] fp32
  int64_t step_ = 0;
  bool record_stats_ = false, last_step_recorded_ = false;
};

}  // namespace sinklab

#endif  // SINKLAB_LAUNCH_DISTRIBUTED_OPTIMIZER_H_

// ShardedAdamW: ZeRO stage 1 for AdamW (Rajbhandari et al. 2020, "ZeRO: Memory
// Optimizations Toward Training Trillion Parameter Models", optimizer state partitioning).
//
// The parameters, their masters concatenated in the given order, form one flat vector of
// `total` elements (optim/flat_view.h). With N ranks and S = ShardSize(total, N), rank r owns
// the contiguous shard [r S, (r + 1) S) of it (the last shards end in padding). Per step:
//   ReduceScatterGrads:  shard_grad <- sum over ranks of each rank's grads on the shard
//   Step:                AdamW on the shard only (m and v exist for the shard only)
//   AllGatherParams:     every rank's masters <- every rank's updated shard
// Both collectives go in rounds of at most `chunk` elements per rank (a gradient bucket
// split over the ranks), so the scratch is N x chunk floats, not a flat copy.
//
// The update is a plain AdamW (optim/adamw.h) over "pieces": each parameter's part inside the
// shard becomes a Parameter whose master views that part of the real master and whose grad
// views the matching part of shard_grad. The arithmetic is therefore exactly an unsharded
// AdamW's, element by element.
//
// On GPUs (CUDA parameters, the arena on the GPU, `comm` an NcclCommunicator): the packing
// copies run on stream() (set_stream: the NCCL stream), the collectives on the NCCL stream
// with a host wait, AdamW on the legacy default stream. The caller orders the phases: the
// gradients finished before ReduceScatterGrads, Step's update before AllGatherParams (e.g.
// cudaDeviceSynchronize). The pieces have no bf16 compute copy: after AllGatherParams the
// caller refreshes the parameters' compute copies from their masters.
#ifndef SINKLAB_OPTIM_SHARDED_ADAMW_H_
#define SINKLAB_OPTIM_SHARDED_ADAMW_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "configs/sinklab.pb.h"
#include "core/arena.h"
#include "core/comm.h"
#include "layers/parameter.h"
#include "optim/adamw.h"
#include "optim/flat_view.h"

namespace sinklab {

class ShardedAdamW {
 public:
  // params (fp32 CPU, distinct) with their decoupled decays; `comm` (not owned) is the data-
  // parallel group; chunk_elements >= 1 bounds one round of a collective per rank. Allocates
  // the shard gradient, the state and the scratch from `arena` (before it is sealed).
  ShardedAdamW(const OptimConfig& config, std::vector<Parameter*> params,
               std::vector<float> weight_decays, Communicator* comm, int64_t chunk_elements,
               Arena* arena);

  // Collectives of one step, in this order, with Step between them.
  void ReduceScatterGrads();
  void Step(float lr, int64_t step);
  void AllGatherParams();

  // The CUDA stream (cudaStream_t) of the packing copies on GPUs; null: the default stream.
  void set_stream(void* stream);

  // This rank's averaged gradients: shard_size() floats (flat [shard_begin(), ...)), on the
  // arena's device; clipping scales them. Padding past total() stays zero.
  float* shard_grad() const { return shard_grad_.f32(); }
  // sum of shard_grad()^2 (read to the host), and shard_grad() *= factor; any device.
  double ShardGradSumOfSquares() const;
  void ScaleShardGrad(float factor);
  int64_t shard_size() const { return shard_size_; }
  int64_t shard_begin() const { return static_cast<int64_t>(comm_->rank()) * shard_size_; }
  int64_t total() const { return masters_.size(); }
  const std::vector<Parameter*>& params() const { return params_; }

  int64_t step() const { return adamw_ != nullptr ? adamw_->step() : step_; }
  void set_step(int64_t step);
  void set_record_stats(bool record);
  // Adds this rank's sum of (p_new - p_old)^2 of the last Step, per parameter, to
  // (*per_param)[i] for params()[i] (only the elements of the shard).
  void AddUpdateSumSquares(std::vector<double>* per_param) const;

  // Checkpoints hold the whole state, per parameter with its full shape.
  // Collective: full_m[i], full_v[i] (params()[i]'s shape) <- the state of every rank's
  // shard. Ranks that pass empty vectors take part without receiving (e.g. all but rank 0).
  void GatherState(const std::vector<Tensor>& full_m, const std::vector<Tensor>& full_v);
  // Local: this rank's shard of the state <- full_m, full_v (every rank reads the checkpoint).
  void ScatterState(const std::vector<Tensor>& full_m, const std::vector<Tensor>& full_v);

 private:
  // fn(round begin inside a shard, element count) for the rounds that cover a shard.
  template <typename Fn>
  void ForEachRound(const Fn& fn) const {
    for (int64_t begin = 0; begin < shard_size_; begin += chunk_) {
      fn(begin, shard_size_ - begin < chunk_ ? shard_size_ - begin : chunk_);
    }
  }
  // Gathers `shard_state` (views of this rank's state in flat order) into `full` on ranks
  // that pass a non-empty one.
  void GatherFlat(const FlatView& shard_state, const FlatView& full);

  Communicator* comm_;
  Device device_;  // of the parameters, the state and the scratch
  std::vector<Parameter*> params_;
  FlatView masters_, grads_;   // the flat vector and its gradient, over every parameter
  int64_t shard_size_ = 0, chunk_ = 1;
  Tensor shard_grad_;          // [shard_size] fp32
  Tensor send_, receive_;      // scratch [world * chunk] each
  std::vector<Parameter> pieces_;        // this rank's part of each parameter it touches
  std::vector<size_t> piece_param_;      // pieces_[k] is part of params_[piece_param_[k]]
  std::unique_ptr<AdamW> adamw_;         // over pieces_; null when the shard is all padding
  FlatView shard_m_, shard_v_;           // the pieces' state in flat order
  int64_t step_ = 0;                     // when adamw_ is null
};

}  // namespace sinklab

#endif  // SINKLAB_OPTIM_SHARDED_ADAMW_H_

// DistributedMuon: Muon (optim/muon.h) under data parallelism without repeating the
// Newton-Schulz iterations on every rank. Each matrix is owned by one rank; a rank keeps the
// momentum of its own matrices only and updates only them, then every rank receives every
// updated matrix by one all-gather. This is what KellerJordan/Muon `muon.py` (Muon.step)
// does with torch.distributed, there with a round-robin assignment and one all_gather per
// world_size matrices; every rank holds the whole averaged gradient of every matrix.
//
// Ownership balances the Newton-Schulz work by size: matrices in decreasing numel (ties in
// parameter order) each go to the rank with the fewest elements so far (ties: the lowest
// rank); deterministic, so every rank computes the same assignment. The all-gather sends each
// rank's matrices concatenated in parameter order, padded to the largest rank's total.
//
// The update of a matrix is the single-process Muon's, bit for bit (the owner runs it).
#ifndef SINKLAB_OPTIM_DISTRIBUTED_MUON_H_
#define SINKLAB_OPTIM_DISTRIBUTED_MUON_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "configs/sinklab.pb.h"
#include "core/arena.h"
#include "core/comm.h"
#include "layers/parameter.h"
#include "optim/muon.h"

namespace sinklab {

// The owner rank of each matrix of `numels` (the rule above).
std::vector<int> AssignMatricesToRanks(const std::vector<int64_t>& numels, int world_size);

class DistributedMuon {
 public:
  // params: Muon's 2-D fp32 CPU matrices with their decays; `comm` (not owned) is the data-
  // parallel group. Allocates this rank's Muon state and the all-gather scratch from `arena`.
  DistributedMuon(const MuonConfig& config, std::vector<Parameter*> params,
                  std::vector<float> weight_decays, Communicator* comm, Arena* arena);

  // Collective: updates this rank's matrices from their (averaged) grads, then shares them.
  void Step(float lr, int64_t step);

  const std::vector<Parameter*>& params() const { return params_; }
  int owner(size_t i) const { return owner_[i]; }
  bool owns(size_t i) const { return owner_[i] == comm_->rank(); }
  int64_t owned_count() const { return static_cast<int64_t>(owned_.size()); }

  int64_t step() const { return muon_ != nullptr ? muon_->step() : step_; }
  void set_step(int64_t step);
  void set_record_stats(bool record);
  // Adds the last Step's statistics of this rank's matrices to (*sum_squares)[i] and
  // (*sigma_max)[i] for params()[i] (sized params().size()); others are left as they are.
  void AddUpdateStats(std::vector<double>* sum_squares, std::vector<double>* sigma_max) const;

  // Collective: full_m[i] (params()[i]'s shape) <- the owner's momentum. Ranks that pass an
  // empty vector take part without receiving.
  void GatherMomentum(const std::vector<Tensor>& full_m);
  // Local: this rank's momentum <- full_m (every rank reads the checkpoint).
  void ScatterMomentum(const std::vector<Tensor>& full_m);

 private:
  // Collective: dst[i] <- src_own[k] of the owner, for the owned matrices listed in owned_
  // (src_own[k] is the k-th owned matrix's data on this rank). dst empty: only send.
  void AllGatherOwned(const std::vector<const float*>& src_own, const std::vector<float*>& dst);

  Communicator* comm_;
  std::vector<Parameter*> params_;
  std::vector<int> owner_;     // per matrix
  std::vector<size_t> owned_;  // indices of this rank's matrices, in parameter order
  std::vector<std::vector<size_t>> owned_by_rank_;
  std::vector<float*> masters_;            // per matrix (Step's all-gather, prepared once)
  std::vector<const float*> own_masters_;  // per owned matrix
  int64_t max_owned_elements_ = 1;  // padding of the all-gather
  std::unique_ptr<Muon> muon_;      // over this rank's matrices; null when it owns none
  Tensor send_, receive_;           // [max_owned], [world * max_owned]
  int64_t step_ = 0;                // when muon_ is null
};

}  // namespace sinklab

#endif  // SINKLAB_OPTIM_DISTRIBUTED_MUON_H_

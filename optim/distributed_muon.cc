#include "optim/distributed_muon.h"

#include <algorithm>
#include <cstring>
#include <numeric>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/status.h"

namespace sinklab {

std::vector<int> AssignMatricesToRanks(const std::vector<int64_t>& numels, int world_size) {
  SL_CHECK_MSG(world_size >= 1, absl::StrCat("world_size=", world_size));
  std::vector<size_t> order(numels.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return numels[a] > numels[b]; });
  std::vector<int64_t> load(world_size, 0);
  std::vector<int> owner(numels.size(), 0);
  for (const size_t i : order) {
    // min_element returns the first minimum: ties go to the lowest rank.
    const int rank = static_cast<int>(std::min_element(load.begin(), load.end()) - load.begin());
    owner[i] = rank;
    load[rank] += numels[i];
  }
  return owner;
}

DistributedMuon::DistributedMuon(const MuonConfig& config, std::vector<Parameter*> params,
                                 std::vector<float> weight_decays, Communicator* comm,
                                 Arena* arena)
    : comm_(comm), params_(std::move(params)) {
  SL_CHECK(comm_ != nullptr && arena != nullptr);
  SL_CHECK_MSG(weight_decays.size() == params_.size(),
               absl::StrCat(weight_decays.size(), " decays for ", params_.size(), " matrices"));
  const int world = comm_->world_size();
  std::vector<int64_t> numels;
  for (const Parameter* param : params_) {
    SL_CHECK_MSG(param->master.device() == Device::kCpu,
                 absl::StrCat(param->name, ": distributed Muon has only the CPU path so far"));
    numels.push_back(param->master.numel());
  }
  owner_ = AssignMatricesToRanks(numels, world);
  owned_by_rank_.resize(world);
  std::vector<int64_t> owned_elements(world, 0);
  for (size_t i = 0; i < params_.size(); ++i) {
    owned_by_rank_[owner_[i]].push_back(i);
    owned_elements[owner_[i]] += numels[i];
  }
  owned_ = owned_by_rank_[comm_->rank()];
  for (const Parameter* param : params_) masters_.push_back(param->master.f32());
  for (const size_t i : owned_) own_masters_.push_back(params_[i]->master.f32());
  max_owned_elements_ =
      std::max<int64_t>(1, *std::max_element(owned_elements.begin(), owned_elements.end()));
  send_ = arena->Allocate(DType::kF32, {max_owned_elements_});
  receive_ = arena->Allocate(DType::kF32, {world * max_owned_elements_});
  if (owned_.empty()) return;
  std::vector<Parameter*> mine;
  std::vector<float> my_decays;
  for (const size_t i : owned_) {
    mine.push_back(params_[i]);
    my_decays.push_back(weight_decays[i]);
  }
  muon_ = std::make_unique<Muon>(config, std::move(mine), std::move(my_decays), arena);
}

void DistributedMuon::AllGatherOwned(const std::vector<const float*>& src_own,
                                     const std::vector<float*>& dst) {
  SL_CHECK(src_own.size() == owned_.size() && (dst.empty() || dst.size() == params_.size()));
  int64_t at = 0;
  for (size_t k = 0; k < owned_.size(); ++k) {
    const int64_t n = params_[owned_[k]]->master.numel();
    std::memcpy(send_.f32() + at, src_own[k], n * sizeof(float));
    at += n;
  }
  std::fill(send_.f32() + at, send_.f32() + max_owned_elements_, 0.0f);
  comm_->AllGather(send_.f32(), receive_.f32(), max_owned_elements_);
  if (dst.empty()) return;
  for (size_t r = 0; r < owned_by_rank_.size(); ++r) {
    const float* block = receive_.f32() + r * max_owned_elements_;
    for (const size_t i : owned_by_rank_[r]) {
      const int64_t n = params_[i]->master.numel();
      if (dst[i] != block) std::memcpy(dst[i], block, n * sizeof(float));
      block += n;
    }
  }
}

void DistributedMuon::Step(float lr, int64_t step) {
  if (muon_ != nullptr) {
    muon_->Step(lr, step);
  } else {
    step_ = step;
  }
  AllGatherOwned(own_masters_, masters_);
}

void DistributedMuon::set_step(int64_t step) {
  step_ = step;
  if (muon_ != nullptr) muon_->set_step(step);
}

void DistributedMuon::set_record_stats(bool record) {
  if (muon_ != nullptr) muon_->set_record_stats(record);
}

void DistributedMuon::AddUpdateStats(std::vector<double>* sum_squares,
                                     std::vector<double>* sigma_max) const {
  SL_CHECK(sum_squares->size() == params_.size() && sigma_max->size() == params_.size());
  if (muon_ == nullptr) return;
  for (size_t k = 0; k < owned_.size(); ++k) {
    (*sum_squares)[owned_[k]] += muon_->last_update_sum_squares()[k];
    (*sigma_max)[owned_[k]] += muon_->last_sigma_max()[k];
  }
}

void DistributedMuon::GatherMomentum(const std::vector<Tensor>& full_m) {
  SL_CHECK(full_m.empty() || full_m.size() == params_.size());
  std::vector<const float*> src;
  if (muon_ != nullptr) {
    for (const StateTensor& state : muon_->StateTensors()) src.push_back(state.tensor.f32());
  }
  std::vector<float*> dst;
  for (const Tensor& t : full_m) dst.push_back(t.f32());
  AllGatherOwned(src, dst);
}

void DistributedMuon::ScatterMomentum(const std::vector<Tensor>& full_m) {
  SL_CHECK(full_m.size() == params_.size());
  if (muon_ == nullptr) return;
  const std::vector<StateTensor> state = muon_->StateTensors();
  for (size_t k = 0; k < owned_.size(); ++k) {
    std::memcpy(state[k].tensor.f32(), full_m[owned_[k]].f32(), state[k].tensor.nbytes());
  }
}

}  // namespace sinklab

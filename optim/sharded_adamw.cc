#include "optim/sharded_adamw.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/status.h"
#include "optim/clip.h"

namespace sinklab {
namespace {

std::vector<Tensor> MastersOf(const std::vector<Parameter*>& params) {
  std::vector<Tensor> tensors;
  for (const Parameter* param : params) tensors.push_back(param->master);
  return tensors;
}

std::vector<Tensor> GradsOf(const std::vector<Parameter*>& params) {
  std::vector<Tensor> tensors;
  for (const Parameter* param : params) tensors.push_back(param->grad);
  return tensors;
}

// A 1-D view of elements [first, first + count) of an fp32 tensor.
Tensor Span(const Tensor& t, int64_t first, int64_t count) {
  return Tensor(t.f32() + first, DType::kF32, t.device(), {count});
}

}  // namespace

ShardedAdamW::ShardedAdamW(const OptimConfig& config, std::vector<Parameter*> params,
                           std::vector<float> weight_decays, Communicator* comm,
                           int64_t chunk_elements, Arena* arena)
    : comm_(comm),
      device_(arena->device()),
      params_(std::move(params)),
      masters_(MastersOf(params_), device_),
      grads_(GradsOf(params_), device_) {
  SL_CHECK(comm_ != nullptr);
  SL_CHECK_MSG(weight_decays.size() == params_.size() && chunk_elements >= 1,
               absl::StrCat(weight_decays.size(), " decays for ", params_.size(),
                            " parameters; chunk ", chunk_elements));
  const int world = comm_->world_size();
  shard_size_ = ShardSize(masters_.size(), world);
  chunk_ = std::max<int64_t>(1, std::min(chunk_elements, shard_size_));
  shard_grad_ = arena->Allocate(DType::kF32, {std::max<int64_t>(shard_size_, 1)});
  send_ = arena->Allocate(DType::kF32, {world * chunk_});
  receive_ = arena->Allocate(DType::kF32, {world * chunk_});

  // Pieces: each parameter's overlap with [shard_begin, shard_begin + shard_size).
  const int64_t begin = shard_begin();
  std::vector<float> piece_decays;
  masters_.ForEachPiece(begin, begin + shard_size_,
                        [&](size_t i, int64_t first, int64_t flat, int64_t count) {
    Parameter piece;
    piece.name = params_[i]->name;
    piece.kind = params_[i]->kind;
    piece.master = Span(params_[i]->master, first, count);
    piece.grad = Span(shard_grad_, flat - begin, count);
    pieces_.push_back(std::move(piece));
    piece_param_.push_back(i);
    piece_decays.push_back(weight_decays[i]);
  });
  if (pieces_.empty()) return;
  std::vector<Parameter*> piece_ptrs;
  for (Parameter& piece : pieces_) piece_ptrs.push_back(&piece);
  adamw_ = std::make_unique<AdamW>(config, piece_ptrs, std::move(piece_decays), arena);
  // StateTensors lists m then v per piece, pieces in flat order.
  std::vector<Tensor> m, v;
  const std::vector<StateTensor> state = adamw_->StateTensors();
  for (size_t k = 0; k < state.size(); k += 2) {
    m.push_back(state[k].tensor);
    v.push_back(state[k + 1].tensor);
  }
  shard_m_ = FlatView(std::move(m), device_);
  shard_v_ = FlatView(std::move(v), device_);
}

void ShardedAdamW::set_stream(void* stream) {
  for (FlatView* view : {&masters_, &grads_, &shard_m_, &shard_v_}) view->set_stream(stream);
}

double ShardedAdamW::ShardGradSumOfSquares() const {
  Parameter whole;  // the one tensor, for clip.h's helpers on either device
  whole.grad = shard_grad_.Slice0(0, shard_size_);
  return GradSumOfSquares({&whole});
}

void ShardedAdamW::ScaleShardGrad(float factor) {
  Parameter whole;
  whole.grad = shard_grad_.Slice0(0, shard_size_);
  ScaleGrads({&whole}, factor);
}

void ShardedAdamW::ReduceScatterGrads() {
  const int world = comm_->world_size();
  ForEachRound([&](int64_t round_begin, int64_t count) {
    // Rank r's block of the send buffer is its slice of shard r (core/comm.h's layout).
    for (int r = 0; r < world; ++r) {
      grads_.CopyOut(r * shard_size_ + round_begin, count, send_.f32() + r * count);
    }
    comm_->ReduceScatterSum(send_.f32(), shard_grad() + round_begin, count);
  });
}

void ShardedAdamW::Step(float lr, int64_t step) {
  if (adamw_ != nullptr) {
    adamw_->Step(lr, step);
  } else {
    step_ = step;
  }
}

void ShardedAdamW::AllGatherParams() {
  const int world = comm_->world_size();
  const int64_t begin = shard_begin();
  ForEachRound([&](int64_t round_begin, int64_t count) {
    masters_.CopyOut(begin + round_begin, count, send_.f32());
    comm_->AllGather(send_.f32(), receive_.f32(), count);
    for (int r = 0; r < world; ++r) {
      masters_.CopyIn(r * shard_size_ + round_begin, count, receive_.f32() + r * count);
    }
  });
}

void ShardedAdamW::GatherFlat(const FlatView& shard_state, const FlatView& full) {
  const int world = comm_->world_size();
  ForEachRound([&](int64_t round_begin, int64_t count) {
    shard_state.CopyOut(round_begin, count, send_.f32());
    comm_->AllGather(send_.f32(), receive_.f32(), count);
    if (full.tensors().empty()) return;
    for (int r = 0; r < world; ++r) {
      full.CopyIn(r * shard_size_ + round_begin, count, receive_.f32() + r * count);
    }
  });
}

void ShardedAdamW::GatherState(const std::vector<Tensor>& full_m,
                               const std::vector<Tensor>& full_v) {
  SL_CHECK(full_m.size() == full_v.size() && (full_m.empty() || full_m.size() == params_.size()));
  for (const auto& [shard, full] : {std::make_pair(&shard_m_, &full_m), std::make_pair(&shard_v_, &full_v)}) {
    FlatView view(*full, device_);
    view.set_stream(shard->stream());
    GatherFlat(*shard, view);
  }
}

void ShardedAdamW::ScatterState(const std::vector<Tensor>& full_m,
                                const std::vector<Tensor>& full_v) {
  SL_CHECK(full_m.size() == params_.size() && full_v.size() == params_.size());
  // Full state on any device; the shard's state tensors are this view's buffers.
  FlatView m(full_m, device_), v(full_v, device_);
  m.set_stream(shard_m_.stream());
  v.set_stream(shard_m_.stream());
  for (size_t k = 0; k < pieces_.size(); ++k) {
    const int64_t flat = shard_m_.offset(k);  // the piece's place inside the shard
    m.CopyOut(shard_begin() + flat, pieces_[k].master.numel(), shard_m_.tensors()[k].f32());
    v.CopyOut(shard_begin() + flat, pieces_[k].master.numel(), shard_v_.tensors()[k].f32());
  }
}

void ShardedAdamW::set_step(int64_t step) {
  step_ = step;
  if (adamw_ != nullptr) adamw_->set_step(step);
}

void ShardedAdamW::set_record_stats(bool record) {
  if (adamw_ != nullptr) adamw_->set_record_stats(record);
}

void ShardedAdamW::AddUpdateSumSquares(std::vector<double>* per_param) const {
  SL_CHECK(per_param->size() == params_.size());
  if (adamw_ == nullptr) return;
  for (size_t k = 0; k < pieces_.size(); ++k) {
    (*per_param)[piece_param_[k]] += adamw_->last_update_sum_squares()[k];
  }
}

}  // namespace sinklab

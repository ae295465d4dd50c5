#include "launch/distributed_optimizer.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/status.h"
#include "launch/checkpoint.h"
#include "optim/clip.h"
#include "optim/matrix_ops.h"

#if SINKLAB_WITH_CUDA
#include <cuda_runtime.h>

#include "core/cuda_check.h"
#endif

#if SINKLAB_WITH_NCCL
#include "core/comm_nccl.h"
#include "layers/cuda/cuda_backend.h"
#include "optim/cuda/optim_kernels.h"
#endif

namespace sinklab {
namespace {

// Test hook: SINKLAB_FORCE_NCCL=1 takes the GPU data-parallel path (NCCL all-reduce of the
// gradient buckets) on one rank too, so a one-GPU machine tests it.
bool NcclForcedForTests() {
  const char* value = std::getenv("SINKLAB_FORCE_NCCL");
  return value != nullptr && std::string(value) == "1";
}

// dst <- src, the same number of bytes, each on the CPU or a GPU.
void CopyBytes(const Tensor& dst, const Tensor& src) {
  SL_CHECK_MSG(dst.nbytes() == src.nbytes(), absl::StrCat(dst.nbytes(), " vs ", src.nbytes()));
  if (dst.device() == Device::kCpu && src.device() == Device::kCpu) {
    std::memcpy(dst.data(), src.data(), dst.nbytes());
    return;
  }
#if SINKLAB_WITH_CUDA
  SL_CUDA_CHECK(cudaMemcpy(dst.data(), src.data(), dst.nbytes(), cudaMemcpyDefault));
#else
  SL_CHECK_MSG(false, "a GPU tensor in a build without CUDA");
#endif
}

// distributed.bucket_mb in fp32 elements (at least 1).
int64_t BucketElements(const Config& config) {
  return std::max<int64_t>(
      1, static_cast<int64_t>(config.distributed().bucket_mb() * (1 << 20) / sizeof(float)));
}

}  // namespace

struct DistributedOptimizer::FullState {
  std::unique_ptr<OptimizerSet> set;
  std::vector<Tensor> adamw_m, adamw_v;  // per adamw_params_
  std::vector<Tensor> muon_m;            // per muon_params_
};

absl::StatusOr<std::unique_ptr<DistributedOptimizer>> DistributedOptimizer::Create(
    const Config& config, const std::vector<Parameter*>& params, Communicator* comm, Arena* arena) {
  SL_CHECK(comm != nullptr && arena != nullptr);
  std::unique_ptr<DistributedOptimizer> opt(new DistributedOptimizer());
  opt->comm_ = comm;
  opt->optim_ = config.optim();
  opt->params_ = params;
  const bool on_gpu = std::any_of(params.begin(), params.end(), [](const Parameter* param) {
    return param->master.device() != Device::kCpu;
  });
  if (on_gpu && (comm->world_size() > 1 || NcclForcedForTests())) {
    SL_RETURN_IF_ERROR(opt->InitGpuDataParallel(config, arena));
    return opt;
  }
  // One rank: nothing to sum, and on a GPU ZeRO-1 has nothing to shard (on the CPU one rank
  // with ZeRO-1 keeps the sharded path, a shard of everything).
  if (comm->world_size() == 1 && (!config.distributed().zero1() || on_gpu)) {
    SL_ASSIGN_OR_RETURN(opt->set_, OptimizerSet::Create(config.optim(), params, arena));
    return opt;
  }
  SL_ASSIGN_OR_RETURN(Decays decays, opt->RouteGroups(config));
  const int world = comm->world_size();
  const int64_t bucket_elements = BucketElements(config);
  const bool zero1 = config.distributed().zero1();
  if (zero1 && !opt->adamw_params_.empty()) {
    opt->sharded_ =
        std::make_unique<ShardedAdamW>(config.optim(), opt->adamw_params_, std::move(decays.adamw),
                                       comm, std::max<int64_t>(1, bucket_elements / world), arena);
  } else if (!opt->adamw_params_.empty()) {
    opt->adamw_ =
        std::make_unique<AdamW>(config.optim(), opt->adamw_params_, std::move(decays.adamw), arena);
  }
  if (!opt->muon_params_.empty()) {
    opt->muon_ = std::make_unique<DistributedMuon>(config.optim().muon(), opt->muon_params_,
                                                   std::move(decays.muon), comm, arena);
  }
  // All-reduced: every gradient, or under ZeRO-1 the Muon ones only; reverse model order.
  std::vector<Tensor> grads;
  for (size_t i : opt->AllReducedParams(zero1)) grads.push_back(params[i]->grad);
  opt->all_reduced_grads_ = FlatView(std::move(grads));
  const int64_t bucket = std::min(bucket_elements, opt->all_reduced_grads_.size());
  opt->bucket_ = arena->Allocate(DType::kF32, {std::max<int64_t>(1, bucket)});
  return opt;
}

absl::StatusOr<DistributedOptimizer::Decays> DistributedOptimizer::RouteGroups(
    const Config& config) {
  SL_ASSIGN_OR_RETURN(groups_, RouteParamGroups(params_, config.optim()));
  adamw_lr_ = config.optim().lr();
  muon_lr_ = MuonLearningRate(config.optim());
  Decays decays;
  for (const ParamGroup& group : groups_) {
    const bool muon = group.optimizer == MUON;
    for (Parameter* param : group.params) {
      (muon ? muon_params_ : adamw_params_).push_back(param);
      (muon ? decays.muon : decays.adamw).push_back(group.weight_decay);
    }
  }
  return decays;
}

std::vector<size_t> DistributedOptimizer::AllReducedParams(bool zero1) const {
  std::vector<size_t> indices;
  for (size_t i = params_.size(); i-- > 0;) {
    const bool is_muon =
        std::find(muon_params_.begin(), muon_params_.end(), params_[i]) != muon_params_.end();
    if (!zero1 || is_muon) indices.push_back(i);
  }
  return indices;
}

absl::Status DistributedOptimizer::InitGpuDataParallel(const Config& config, Arena* arena) {
#if SINKLAB_WITH_NCCL
  if (arena->device() != Device::kCuda) {
    return absl::FailedPreconditionError("GPU data parallel: the arena must be on the GPU");
  }
  std::unique_ptr<NcclCommunicator> nccl = NcclCommunicator::Create(comm_);
  nccl_ = nccl.get();
  nccl_owned_ = std::move(nccl);
  // Muon: each rank orthogonalizes its slice of every shape group; an NCCL all-gather on the
  // communicator's stream, ordered with the default stream by events, shares the slices.
  MuonSharding sharding;
  sharding.rank = nccl_->rank();
  sharding.world = nccl_->world_size();
  NcclCommunicator* const communicator = nccl_;
  sharding.all_gather = [communicator](const void* send, void* recv, int64_t bytes) {
    communicator->EnqueueAllGatherBytes(send, recv, bytes, /*after=*/nullptr);
  };
  const bool zero1 = config.distributed().zero1();
  const int64_t bucket_elements = BucketElements(config);
  if (!zero1) {
    SL_ASSIGN_OR_RETURN(set_,
                        OptimizerSet::Create(config.optim(), params_, arena, std::move(sharding)));
  } else {
    // ZeRO-1: AdamW sharded (its gradients reduce-scattered, its parameters all-gathered), Muon
    // as without ZeRO-1 (replicated momentum; the all-gathered Newton-Schulz slices).
    SL_ASSIGN_OR_RETURN(Decays decays, RouteGroups(config));
    if (!adamw_params_.empty()) {
      sharded_ = std::make_unique<ShardedAdamW>(
          config.optim(), adamw_params_, std::move(decays.adamw), nccl_,
          std::max<int64_t>(1, bucket_elements / nccl_->world_size()), arena);
      sharded_->set_stream(nccl_->stream());
    }
    if (!muon_params_.empty()) {
      gpu_muon_ = std::make_unique<Muon>(config.optim().muon(), muon_params_,
                                         std::move(decays.muon), arena, std::move(sharding));
    }
  }
  std::vector<int64_t> sizes;
  for (size_t i : AllReducedParams(zero1)) {
    const Tensor& grad = params_[i]->grad;
    SL_CHECK_MSG(grad.dtype() == DType::kF32 && grad.device() == Device::kCuda, params_[i]->name);
    gpu_grads_.push_back(grad);
    gpu_grad_param_.push_back(i);
    sizes.push_back(grad.numel());
  }
  gpu_buckets_ = PlanBuckets(sizes, bucket_elements);
  for (const Bucket& bucket : gpu_buckets_) {
    largest_gpu_bucket_ = std::max(largest_gpu_bucket_, bucket.size);
    size_t first = params_.size();  // the bucket is final once params_[first, end) are
    for (const BucketSegment& segment : bucket.segments) {
      first = std::min(first, gpu_grad_param_[segment.tensor]);
    }
    bucket_first_param_.push_back(first);
  }
  cudaEvent_t event = nullptr;
  SL_CUDA_CHECK(cudaEventCreateWithFlags(&event, cudaEventDisableTiming));
  grads_ready_ = event;
  return absl::OkStatus();
#else
  return absl::FailedPreconditionError(absl::StrCat(
      "data-parallel training on GPUs (", comm_->world_size(),
      " ranks) needs NCCL, and this sinklab was built without it (-DSINKLAB_NCCL=OFF, or "
      "nccl.h / libnccl not found when configuring); use --device cpu or one rank"));
#endif
}

DistributedOptimizer::~DistributedOptimizer() {
#if SINKLAB_WITH_NCCL
  if (grads_ready_ != nullptr) SL_CUDA_CHECK(cudaEventDestroy(grads_ready_));
#endif
}

Model::GradsReadyFn DistributedOptimizer::GradsReadyHook(Backend* backend) {
#if SINKLAB_WITH_NCCL
  const auto* cuda = dynamic_cast<const CudaBackend*>(backend);
  if (nccl_ == nullptr || gpu_buckets_.empty() || cuda == nullptr) return nullptr;
  const cudaStream_t producer = cuda->stream();
  return [this, producer](size_t first_final) { EnqueueReadyBuckets(first_final, producer); };
#else
  (void)backend;
  return nullptr;
#endif
}

void DistributedOptimizer::EnqueueReadyBuckets(size_t first_final, CUstream_st* producer) {
#if SINKLAB_WITH_NCCL
  const size_t count = gpu_buckets_.size();
  if (next_bucket_ >= count || bucket_first_param_[next_bucket_] < first_final) return;
  // The NCCL stream starts these buckets after the backward work queued so far, and the
  // backward pass goes on beside them (it writes no gradient of a finished parameter).
  SL_CUDA_CHECK(cudaEventRecord(grads_ready_, producer));
  SL_CUDA_CHECK(cudaStreamWaitEvent(nccl_->stream(), grads_ready_, 0));
  while (next_bucket_ < count && bucket_first_param_[next_bucket_] >= first_final) {
    ReduceGpuBucket(next_bucket_++);
  }
#else
  (void)first_final;
  (void)producer;
#endif
}

void DistributedOptimizer::AllReduceBucketsOnGpu() {
#if SINKLAB_WITH_NCCL
  if (next_bucket_ < gpu_buckets_.size()) {
    // Not (all) enqueued during the backward pass (no hook): it ran on the backend's stream,
    // the NCCL stream is ordered with no other, so wait for everything first.
    SL_CUDA_CHECK(cudaDeviceSynchronize());
    while (next_bucket_ < gpu_buckets_.size()) ReduceGpuBucket(next_bucket_++);
  }
  next_bucket_ = 0;
  nccl_->Wait();  // the host waits, so kernels enqueued after this see the sums
#endif
}

void DistributedOptimizer::ReduceGpuBucket(size_t index) {
#if SINKLAB_WITH_NCCL
  // Each segment summed in place, the bucket's segments in one NCCL group (one launch): no
  // packing copies and no bucket buffer.
  std::vector<NcclCommunicator::FloatSpan> spans;
  for (const BucketSegment& segment : gpu_buckets_[index].segments) {
    spans.push_back({gpu_grads_[segment.tensor].f32() + segment.tensor_offset, segment.count});
  }
  nccl_->EnqueueAllReduceSums(spans);
#else
  (void)index;
#endif
}

void DistributedOptimizer::AllReduceBuckets() {
  const int64_t total = all_reduced_grads_.size();
  const int64_t bucket = bucket_.numel();
  for (int64_t begin = 0; begin < total; begin += bucket) {
    const int64_t count = std::min(bucket, total - begin);
    all_reduced_grads_.CopyOut(begin, count, bucket_.f32());
    comm_->AllReduceSum(bucket_.f32(), count);
    all_reduced_grads_.CopyIn(begin, count, bucket_.f32());
  }
}

void DistributedOptimizer::ReduceAndClipGradients(const Tensor& norm_out) {
  const float max_norm = optim_.grad_clip();
  if (nccl_ != nullptr) AllReduceBucketsOnGpu();
  if (single_process()) return set_->ClipGradients(max_norm, norm_out);
  const float norm = ReduceAndClipAcrossRanks(max_norm);
  CopyTensorFromHost(norm_out, &norm);
}

float DistributedOptimizer::ReduceAndClipAcrossRanks(float max_norm) {
  if (nccl_ == nullptr && comm_->world_size() > 1) AllReduceBuckets();
  float norm = 0.0f;
  if (sharded_ == nullptr && nccl_ == nullptr) {
    norm = GlobalGradNorm(params_);  // every rank holds every averaged gradient
  } else {
    // Each rank's AdamW shard, plus the Muon gradients: on the CPU each owner adds its
    // matrices; on GPUs every rank holds all of them (all-reduced), so they are added once,
    // after the sum over ranks.
    double sum = 0.0;
    if (sharded_ != nullptr) {
      SynchronizeGpu();  // the backward pass's gradients (backend stream) before the copies
      sharded_->ReduceScatterGrads();
      sum = sharded_->ShardGradSumOfSquares();
    }
    std::vector<Parameter*> owned;
    for (size_t i = 0; i < muon_params_.size(); ++i) {
      if (muon_ != nullptr && muon_->owns(i)) owned.push_back(muon_params_[i]);
    }
    sum += GradSumOfSquares(owned);
    comm_->AllReduceSum(&sum, 1);
    if (gpu_muon_ != nullptr) sum += GradSumOfSquares(muon_params_);
    norm = static_cast<float>(std::sqrt(sum));
  }
  if (max_norm > 0.0f && std::isfinite(norm) && norm > max_norm) {
    // torch.nn.utils.clip_grad_norm_: clip_coef = max_norm / (total_norm + 1e-6).
    const float factor = static_cast<float>(static_cast<double>(max_norm) / (norm + 1e-6));
    if (sharded_ == nullptr && nccl_ == nullptr) {
      ScaleGrads(params_, factor);
    } else {
      if (sharded_ != nullptr) sharded_->ScaleShardGrad(factor);
      ScaleGrads(muon_params_, factor);
    }
  }
  return norm;
}

void DistributedOptimizer::Step(float schedule_factor, int64_t step) {
  if (single_process()) {
    set_->Step(schedule_factor, step);
#if SINKLAB_WITH_NCCL
    // Muon's all-gathers run on the NCCL stream with no host wait; Wait() is where a dead or
    // stalled peer is caught (timeout, asynchronous error) instead of a later host sync
    // blocking forever. The host waits for the last group's products, not for the updates.
    if (nccl_ != nullptr) nccl_->Wait();
#endif
    return;
  }
  if (nccl_ != nullptr) {
    StepGpuZero1(schedule_factor, step);
  } else {
    if (adamw_ != nullptr) adamw_->Step(adamw_lr_ * schedule_factor, step);
    if (sharded_ != nullptr) {
      sharded_->Step(adamw_lr_ * schedule_factor, step);
      sharded_->AllGatherParams();
    }
    if (muon_ != nullptr) muon_->Step(muon_lr_ * schedule_factor, step);
  }
  step_ = step;
  last_step_recorded_ = record_stats_;
}

void DistributedOptimizer::StepGpuZero1(float schedule_factor, int64_t step) {
#if SINKLAB_WITH_NCCL
  if (gpu_muon_ != nullptr) gpu_muon_->Step(muon_lr_ * schedule_factor, step);
  if (sharded_ != nullptr) {
    sharded_->Step(adamw_lr_ * schedule_factor, step);  // default stream
    SynchronizeGpu();                                   // the updated shard, then the copies
    sharded_->AllGatherParams();
    // The pieces have no bf16 copies: every AdamW parameter's copy from its gathered master.
    for (const Parameter* param : adamw_params_) {
      if (!param->compute.empty() && param->compute.data() != param->master.data()) {
        cuda_optim::Convert(param->compute, param->master);
      }
    }
  }
  nccl_->Wait();  // Muon's all-gathers (see the single-process branch)
#else
  (void)schedule_factor;
  (void)step;
#endif
}

void DistributedOptimizer::set_record_stats(bool record) {
  if (single_process()) {
    set_->set_record_stats(record);
    return;
  }
  record_stats_ = record;
  if (adamw_ != nullptr) adamw_->set_record_stats(record);
  if (sharded_ != nullptr) sharded_->set_record_stats(record);
  if (muon_ != nullptr) muon_->set_record_stats(record);
  if (gpu_muon_ != nullptr) gpu_muon_->set_record_stats(record);
}

std::map<std::string, double> DistributedOptimizer::LastUpdateStats() {
  if (single_process()) return set_->LastUpdateStats();
  std::map<std::string, double> stats;
  if (!last_step_recorded_) return stats;
  // One all-reduce of [sharded AdamW sums | Muon sums | Muon sigma_max]: each rank adds what
  // it updated (zeros elsewhere). Replicated AdamW sums are already whole on every rank.
  const size_t na = sharded_ != nullptr ? adamw_params_.size() : 0, nm = muon_params_.size();
  std::vector<double> sums(na + 2 * nm, 0.0);
  if (sharded_ != nullptr) {
    std::vector<double> part(na, 0.0);
    sharded_->AddUpdateSumSquares(&part);
    std::copy(part.begin(), part.end(), sums.begin());
  }
  std::vector<double> muon_sums(nm, 0.0), sigma(nm, 0.0);
  if (muon_ != nullptr) muon_->AddUpdateStats(&muon_sums, &sigma);
  std::copy(muon_sums.begin(), muon_sums.end(), sums.begin() + na);
  std::copy(sigma.begin(), sigma.end(), sums.begin() + na + nm);
  comm_->AllReduceSum(sums.data(), static_cast<int64_t>(sums.size()));
  if (gpu_muon_ != nullptr) {  // every rank applied every update: whole already
    for (size_t i = 0; i < nm; ++i) {
      sums[na + i] = gpu_muon_->last_update_sum_squares()[i];
      sums[na + nm + i] = gpu_muon_->last_sigma_max()[i];
    }
  }
  std::map<const Parameter*, double> per_param;
  for (size_t i = 0; i < adamw_params_.size(); ++i) {
    per_param[adamw_params_[i]] =
        sharded_ != nullptr ? sums[i] : adamw_->last_update_sum_squares()[i];
  }
  for (size_t i = 0; i < nm; ++i) {
    per_param[muon_params_[i]] = sums[na + i];
    stats[absl::StrCat("muon_sigma_max/", muon_params_[i]->name)] = sums[na + nm + i];
  }
  for (const ParamGroup& group : groups_) {
    double sum = 0.0;
    int64_t count = 0;
    for (const Parameter* param : group.params) {
      sum += per_param[param];
      count += param->master.numel();
    }
    stats[absl::StrCat("update_rms/", group.name)] =
        count > 0 ? std::sqrt(sum / static_cast<double>(count)) : 0.0;
  }
  return stats;
}

std::vector<std::string> DistributedOptimizer::Describe() const {
  const int world = comm_->world_size();
  std::vector<std::string> lines =
      single_process() ? set_->Describe() : DescribeParamGroups(groups_);
  if (nccl_ != nullptr) {
    int64_t total = 0;
    for (const Tensor& grad : gpu_grads_) total += grad.numel();
    lines.push_back(absl::StrFormat(
        "data parallel over %d GPU rank(s) with NCCL: %s gradients summed in %d bucket(s) of "
        "up to %d values (%d in all), each as soon as the backward pass has finished it; Muon: "
        "each rank orthogonalizes 1/%d of every shape group, shared by NCCL all-gather",
        world, sharded_ != nullptr ? "the Muon" : "the", gpu_buckets_.size(),
        largest_gpu_bucket_, total, world));
  } else if (!single_process()) {
    lines.push_back(absl::StrFormat(
        "data parallel over %d rank(s): gradients summed in buckets of %d values (%d in all)",
        world, bucket_.numel(), all_reduced_grads_.size()));
  }
  if (sharded_ != nullptr) {
    lines.push_back(absl::StrFormat(
        "ZeRO-1: %d AdamW values in %d shards of %d (reduce-scatter gradients, all-gather "
        "parameters); this rank owns [%d, %d)",
        sharded_->total(), world, sharded_->shard_size(), sharded_->shard_begin(),
        std::min(sharded_->total(), sharded_->shard_begin() + sharded_->shard_size())));
  }
  if (muon_ != nullptr) {
    lines.push_back(
        absl::StrFormat("distributed Muon: %d matrices owned by ranks balanced by size; this rank "
                        "orthogonalizes %d",
                        muon_params_.size(), muon_->owned_count()));
  }
  return lines;
}

absl::StatusOr<std::unique_ptr<DistributedOptimizer::FullState>>
DistributedOptimizer::MakeFullState(Arena* arena) const {
  auto full = std::make_unique<FullState>();
  SL_ASSIGN_OR_RETURN(full->set, OptimizerSet::Create(optim_, params_, arena));
  std::map<std::string, Tensor> by_name;
  for (const StateTensor& state : full->set->StateTensors()) by_name[state.name] = state.tensor;
  const auto find = [&by_name](const std::string& name) {
    const auto it = by_name.find(name);
    SL_CHECK_MSG(it != by_name.end(), absl::StrCat("no optimizer state named ", name));
    return it->second;
  };
  for (const Parameter* param : adamw_params_) {
    full->adamw_m.push_back(find(absl::StrCat("adamw.m.", param->name)));
    full->adamw_v.push_back(find(absl::StrCat("adamw.v.", param->name)));
  }
  for (const Parameter* param : muon_params_) {
    full->muon_m.push_back(find(absl::StrCat("muon.m.", param->name)));
  }
  return full;
}

absl::Status DistributedOptimizer::SaveCheckpoint(const std::string& run_dir, int64_t step,
                                                  const Model& model, const Config& config) {
  const int keep = config.checkpoint().keep();
  if (single_process()) {  // every rank holds the whole state; rank 0 writes it
    if (comm_->rank() != 0) return absl::OkStatus();
    return sinklab::SaveCheckpoint(run_dir, step, model, *set_, config, keep);
  }
  const bool writer = comm_->rank() == 0;
  Arena arena(params_device());
  std::unique_ptr<FullState> full;
  if (writer) {
    SL_ASSIGN_OR_RETURN(full, MakeFullState(&arena));
  }
  const std::vector<Tensor> none;
  if (sharded_ != nullptr) {
    sharded_->GatherState(writer ? full->adamw_m : none, writer ? full->adamw_v : none);
  }
  if (adamw_ != nullptr && writer) {  // replicated: rank 0 has all of it
    const std::vector<StateTensor> state = adamw_->StateTensors();  // m, v per parameter
    for (size_t i = 0; i < adamw_params_.size(); ++i) {
      CopyBytes(full->adamw_m[i], state[2 * i].tensor);
      CopyBytes(full->adamw_v[i], state[2 * i + 1].tensor);
    }
  }
  if (muon_ != nullptr) muon_->GatherMomentum(writer ? full->muon_m : none);
  if (gpu_muon_ != nullptr && writer) {  // replicated momenta
    const std::vector<StateTensor> state = gpu_muon_->StateTensors();
    for (size_t i = 0; i < muon_params_.size(); ++i) CopyBytes(full->muon_m[i], state[i].tensor);
  }
  SynchronizeGpu();  // the gathers' copies ran on the NCCL stream
  if (!writer) return absl::OkStatus();
  full->set->set_step(step_);
  return sinklab::SaveCheckpoint(run_dir, step, model, *full->set, config, keep);
}

absl::StatusOr<int64_t> DistributedOptimizer::LoadLatestCheckpoint(const std::string& run_dir,
                                                                   Model* model) {
  if (single_process()) {
    SL_ASSIGN_OR_RETURN(const int64_t step,
                        sinklab::LoadLatestCheckpoint(run_dir, model, set_.get()));
    SL_RETURN_IF_ERROR(CheckSameStepAsRank0(run_dir, step));
    return step;
  }
  Arena arena(params_device());
  SL_ASSIGN_OR_RETURN(const std::unique_ptr<FullState> full, MakeFullState(&arena));
  SL_ASSIGN_OR_RETURN(const int64_t step,
                      sinklab::LoadLatestCheckpoint(run_dir, model, full->set.get()));
  SL_RETURN_IF_ERROR(CheckSameStepAsRank0(run_dir, step));
  if (sharded_ != nullptr) sharded_->ScatterState(full->adamw_m, full->adamw_v);
  if (adamw_ != nullptr) {
    const std::vector<StateTensor> state = adamw_->StateTensors();
    for (size_t i = 0; i < adamw_params_.size(); ++i) {
      CopyBytes(state[2 * i].tensor, full->adamw_m[i]);
      CopyBytes(state[2 * i + 1].tensor, full->adamw_v[i]);
    }
  }
  if (muon_ != nullptr) muon_->ScatterMomentum(full->muon_m);
  if (gpu_muon_ != nullptr) {
    const std::vector<StateTensor> state = gpu_muon_->StateTensors();
    for (size_t i = 0; i < muon_params_.size(); ++i) CopyBytes(state[i].tensor, full->muon_m[i]);
  }
  SynchronizeGpu();  // ScatterState's copies (NCCL stream) before the full state goes
  set_step(full->set->step());
  return step;
}

absl::Status DistributedOptimizer::CheckSameStepAsRank0(const std::string& run_dir, int64_t step) {
  if (comm_->world_size() == 1) return absl::OkStatus();
  int64_t rank0_step = step;
  comm_->Broadcast(&rank0_step, sizeof(rank0_step), 0);
  if (rank0_step == step) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrFormat(
      "%s: rank %d loaded the checkpoint of step %d, rank 0 that of step %d (do all ranks "
      "see the same run directory?)",
      run_dir, comm_->rank(), step, rank0_step));
}

void DistributedOptimizer::set_step(int64_t step) {
  step_ = step;
  if (adamw_ != nullptr) adamw_->set_step(step);
  if (sharded_ != nullptr) sharded_->set_step(step);
  if (muon_ != nullptr) muon_->set_step(step);
  if (gpu_muon_ != nullptr) gpu_muon_->set_step(step);
}

Device DistributedOptimizer::params_device() const {
  return params_.empty() ? Device::kCpu : params_[0]->master.device();
}

void DistributedOptimizer::SynchronizeGpu() const {
#if SINKLAB_WITH_NCCL
  if (nccl_ != nullptr) SL_CUDA_CHECK(cudaDeviceSynchronize());
#endif
}

}  // namespace sinklab

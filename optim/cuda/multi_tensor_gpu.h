// Multi-tensor GPU optimizer steps: every parameter of an optimizer updated by a handful of
// launches instead of a few per tensor (optim/multi_tensor.h has the work tables). Same
// formulas as the CPU references (optim/adamw.h, optim/muon.h, optim/clip.h); deterministic
// reductions as optim/cuda/optim_kernels.h. Every table and scratch buffer comes from the
// state arena at construction; a step allocates nothing.
//
// Streams: the steps are ordered on the legacy default stream (stream 0), which the model's
// blocking backend stream synchronizes with. Work that may overlap (AdamW beside Muon's
// Newton-Schulz products, a shape group's momentum beside the previous group's products)
// runs on non-blocking SideStreams forked from and joined back into stream 0 with events;
// every kernel is the sequential path's on buffers no concurrent kernel touches, so the
// results are bit-identical to running everything on stream 0.
//
// Gradient clipping is folded into the updates: MultiTensorGradNorm leaves the clip factor
// (1 when not clipping) in device memory and the updates multiply each gradient by it as
// they read it, which is the CPU's grad *= factor followed by the update, with no host round
// trip and no pass over the gradients. The bf16 compute copy of every parameter whose
// compute is separate from its master is written by the update kernel itself.
#ifndef SINKLAB_OPTIM_CUDA_MULTI_TENSOR_GPU_H_
#define SINKLAB_OPTIM_CUDA_MULTI_TENSOR_GPU_H_

#include <cuda_runtime.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <utility>
#include <vector>

#include "core/arena.h"
#include "core/tensor.h"
#include "layers/parameter.h"
#include "optim/multi_tensor.h"
#include "optim/muon.h"

namespace sinklab {

class BatchedNewtonSchulzGpu;

namespace cuda_optim {

// Elements per chunk of the multi-tensor kernels (one 256-thread block each).
constexpr int64_t kChunkElements = int64_t{1} << 15;

// A non-blocking CUDA stream for work beside stream 0, with `marks` events: Fork() makes it
// wait for everything queued on stream 0 so far; Mark(i) records event i after what is
// queued on it so far, and WaitMark(i) makes stream 0 wait for that. Created once (streams
// and events are never made in a step); every call checked.
class SideStream {
 public:
  explicit SideStream(int marks = 1);
  ~SideStream();
  SideStream(const SideStream&) = delete;
  SideStream& operator=(const SideStream&) = delete;

  cudaStream_t stream() const { return stream_; }
  void Fork();
  void Mark(int i);
  void WaitMark(int i);
  // Mark(0) then WaitMark(0): stream 0 waits for everything queued here so far.
  void Join();

 private:
  cudaStream_t stream_ = nullptr;
  cudaEvent_t forked_ = nullptr;
  std::vector<cudaEvent_t> marks_;
};

// The device pointer of a separate bf16 compute copy of `param`, or null when compute is
// empty or aliases master (CHECKs that a separate copy is bf16 of master's numel).
void* SeparateCompute(const Parameter& param);

// sqrt(sum of grad^2) over every parameter (fp32 CUDA grads): one chunked launch and one
// final reduction in a fixed order, then the clip factor on the device.
class MultiTensorGradNorm {
 public:
  MultiTensorGradNorm(const std::vector<Parameter*>& params, Arena* arena);

  // Writes the global norm to *norm_out (device memory; no host read) and leaves in
  // clip_factor() max_norm / (norm + 1e-6) when max_norm > 0 and norm is finite and >
  // max_norm, else 1 (torch.nn.utils.clip_grad_norm_, optim/clip.h). Grads are not modified.
  void Compute(float max_norm, float* norm_out);
  // The same, the norm returned to the host (synchronizes).
  float Compute(float max_norm);
  const float* clip_factor() const { return static_cast<const float*>(factor_.data()); }

 private:
  int num_chunks_;
  Tensor tensors_, chunks_, partials_, norm_, factor_;
};

// AdamW (optim/adamw.h) over every parameter in one launch (plus one for the statistics).
class MultiTensorAdamW {
 public:
  // m[i], v[i]: params[i]'s fp32 CUDA state; weight_decays[i] its decay.
  MultiTensorAdamW(const std::vector<Parameter*>& params, const std::vector<Tensor>& m,
                   const std::vector<Tensor>& v, const std::vector<float>& weight_decays,
                   Arena* arena);

  // One update (AdamW::Step's scalars) queued on `stream` (0: the default stream); grads
  // are multiplied by *grad_scale when it is not null (a device pointer). With `record`,
  // per-parameter sums of (p_new - p_old)^2 land on the device for CopyUpdateSumSquares.
  void Step(float beta1, float beta2, float eps, float lr, float step_size,
            float bias_correction2_sqrt, const float* grad_scale, bool record,
            cudaStream_t stream = nullptr);
  // The sums of the last recorded Step into (*out)[i] per parameter (one copy on that
  // Step's stream; the host waits for it).
  void CopyUpdateSumSquares(std::vector<double>* out) const;

 private:
  int num_tensors_, num_chunks_;
  cudaStream_t last_stream_ = nullptr;
  Tensor tensors_, chunks_, chunk_begin_, partials_, sums_;
};

// Muon (optim/muon.h) with the matrices grouped by wide shape (optim/multi_tensor.h): per
// group one momentum launch (writing the oriented bf16 update, transposing tall matrices
// through shared memory, and the Frobenius partials), one norm reduction, one scaling, the
// batched Newton-Schulz iteration (3 strided-batched products per step) and one update
// launch (decay, scaled step, bf16 compute copy, statistics partials).
//
// Pipelining: every group has its own update batch and Newton-Schulz scratch, so all
// groups' momentum, norm and scaling run first on one SideStream while stream 0 runs the
// groups' products (group g's waiting only for group g's scaling), and each group's update
// runs on another SideStream beside the next group's products (statistics steps: on stream
// 0, before the host reads). Step returns with stream 0 waiting for both.
//
// Data parallelism (sharding.world > 1, or an all_gather at world 1): each group's batch is
// padded to slice * world matrices (slice = ceil(B / world)); rank r orthogonalizes
// matrices [r slice, min(B, (r + 1) slice)) and the all-gather gives every rank every
// slice's bf16 result, which every rank then applies (momentum stays replicated: every rank
// holds the same averaged gradients).
class MultiTensorMuon {
 public:
  MultiTensorMuon(const std::vector<Parameter*>& params, const std::vector<Tensor>& m,
                  const std::vector<float>& weight_decays, const std::vector<float>& scales,
                  float beta, bool nesterov, int ns_steps, Arena* arena,
                  MuonSharding sharding = MuonSharding());
  ~MultiTensorMuon();

  // Statistics of one matrix: its parameter index, sum (p_new - p_old)^2 and its
  // orthogonalized update X [rows, cols] (stored layout, fp32 from bf16) on the host.
  using MatrixStats = std::function<void(int param, double update_sum_squares, const float* x)>;

  // One update with learning rate lr; grads times *grad_scale when not null. With `stats`
  // (statistics steps), calls it once per matrix; X and the sums reach the host in one copy
  // each per group. Everything queued after Step on stream 0 follows the whole update.
  void Step(float lr, const float* grad_scale, const MatrixStats* stats);

  const std::vector<MuonShapeGroup>& groups() const { return groups_; }
  // The matrices of group g this rank orthogonalizes: [slice_begin, slice_begin + count)
  // (count 0 when the rank's padded slice starts past the batch).
  int64_t slice_begin(size_t g) const;
  int64_t slice_count(size_t g) const;

 private:
  struct Group;
  // Momentum, norm and scaling of group g into its batch, queued on `stream`.
  void Prepare(size_t g, const float* grad_scale, cudaStream_t stream);
  // Group g's orthogonalized batch (all-gathered when sharded), queued on stream 0.
  Tensor Orthogonalize(size_t g);

  float beta_;
  bool nesterov_;
  int ns_steps_;
  MuonSharding sharding_;
  bool sharded_;  // an all-gather is set
  std::vector<MuonShapeGroup> groups_;
  std::vector<Group> group_tables_;
  std::vector<std::pair<int64_t, int64_t>> shapes_;  // per parameter, stored [rows, cols]
  std::unique_ptr<BatchedNewtonSchulzGpu> newton_schulz_;
  std::unique_ptr<SideStream> prepare_;  // mark g: group g's batch is ready
  std::unique_ptr<SideStream> apply_;    // the updates (not on statistics steps)
  Tensor apply_partials_, update_sums_;
  // Statistics steps only: X on the host (bf16 bits, fp32, stored layout) and the sums.
  std::vector<uint16_t> host_bits_;
  std::vector<float> host_x_, host_matrix_;
  std::vector<double> host_sums_;
};

}  // namespace cuda_optim
}  // namespace sinklab

#endif  // SINKLAB_OPTIM_CUDA_MULTI_TENSOR_GPU_H_

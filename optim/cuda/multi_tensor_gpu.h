// Multi-tensor GPU optimizer steps: every parameter of an optimizer updated by a handful of
// launches instead of a few per tensor (optim/multi_tensor.h has the work tables). Same
// formulas as the CPU references (optim/adamw.h, optim/muon.h, optim/clip.h); stream 0 and
// deterministic reductions as optim/cuda/optim_kernels.h. Every table and scratch buffer
// comes from the state arena at construction; a step allocates nothing.
//
// Gradient clipping is folded into the updates: MultiTensorGradNorm leaves the clip factor
// (1 when not clipping) in device memory and the updates multiply each gradient by it as
// they read it, which is the CPU's grad *= factor followed by the update, with no host round
// trip and no pass over the gradients. The bf16 compute copy of every parameter whose
// compute is separate from its master is written by the update kernel itself.
#ifndef SINKLAB_OPTIM_CUDA_MULTI_TENSOR_GPU_H_
#define SINKLAB_OPTIM_CUDA_MULTI_TENSOR_GPU_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <utility>
#include <vector>

#include "core/arena.h"
#include "core/tensor.h"
#include "layers/parameter.h"
#include "optim/multi_tensor.h"

namespace sinklab {

class BatchedNewtonSchulzGpu;

namespace cuda_optim {

// Elements per chunk of the multi-tensor kernels (one 256-thread block each).
constexpr int64_t kChunkElements = int64_t{1} << 15;

// The device pointer of a separate bf16 compute copy of `param`, or null when compute is
// empty or aliases master (CHECKs that a separate copy is bf16 of master's numel).
void* SeparateCompute(const Parameter& param);

// sqrt(sum of grad^2) over every parameter (fp32 CUDA grads): one chunked launch and one
// final reduction in a fixed order, then the clip factor on the device.
class MultiTensorGradNorm {
 public:
  MultiTensorGradNorm(const std::vector<Parameter*>& params, Arena* arena);

  // Returns the global norm (the one host read of the step) and leaves in clip_factor()
  // max_norm / (norm + 1e-6) when max_norm > 0 and norm is finite and > max_norm, else 1
  // (torch.nn.utils.clip_grad_norm_, optim/clip.h). Grads are not modified.
  float Compute(float max_norm);
  const float* clip_factor() const { return static_cast<const float*>(factor_.data()); }

 private:
  int num_chunks_;
  Tensor tensors_, chunks_, partials_, total_, factor_;
};

// AdamW (optim/adamw.h) over every parameter in one launch (plus one for the statistics).
class MultiTensorAdamW {
 public:
  // m[i], v[i]: params[i]'s fp32 CUDA state; weight_decays[i] its decay.
  MultiTensorAdamW(const std::vector<Parameter*>& params, const std::vector<Tensor>& m,
                   const std::vector<Tensor>& v, const std::vector<float>& weight_decays,
                   Arena* arena);

  // One update (AdamW::Step's scalars); grads are multiplied by *grad_scale when it is not
  // null (a device pointer). With `record`, per-parameter sums of (p_new - p_old)^2 land on
  // the device for UpdateSumSquares.
  void Step(float beta1, float beta2, float eps, float lr, float step_size,
            float bias_correction2_sqrt, const float* grad_scale, bool record);
  // The sums of the last recorded Step into (*out)[i] per parameter (one copy; synchronizes).
  void CopyUpdateSumSquares(std::vector<double>* out) const;

 private:
  int num_tensors_, num_chunks_;
  Tensor tensors_, chunks_, chunk_begin_, partials_, sums_;
};

// Muon (optim/muon.h) with the matrices grouped by wide shape (optim/multi_tensor.h): per
// group one momentum launch (writing the oriented bf16 update, transposing tall matrices
// through shared memory, and the Frobenius partials), one norm reduction, one scaling, the
// batched Newton-Schulz iteration (3 strided-batched products per step) and one update
// launch (decay, scaled step, bf16 compute copy, statistics partials).
class MultiTensorMuon {
 public:
  MultiTensorMuon(const std::vector<Parameter*>& params, const std::vector<Tensor>& m,
                  const std::vector<float>& weight_decays, const std::vector<float>& scales,
                  float beta, bool nesterov, int ns_steps, Arena* arena);
  ~MultiTensorMuon();

  // Statistics of one matrix: its parameter index, sum (p_new - p_old)^2 and its
  // orthogonalized update X [rows, cols] (stored layout, fp32 from bf16) on the host.
  using MatrixStats = std::function<void(int param, double update_sum_squares, const float* x)>;

  // One update with learning rate lr; grads times *grad_scale when not null. With `stats`
  // (statistics steps), calls it once per matrix; X and the sums reach the host in one copy
  // each per group.
  void Step(float lr, const float* grad_scale, const MatrixStats* stats);

  const std::vector<MuonShapeGroup>& groups() const { return groups_; }

 private:
  struct Group;
  float beta_;
  bool nesterov_;
  int ns_steps_;
  std::vector<MuonShapeGroup> groups_;
  std::vector<Group> group_tables_;
  std::vector<std::pair<int64_t, int64_t>> shapes_;  // per parameter, stored [rows, cols]
  std::unique_ptr<BatchedNewtonSchulzGpu> newton_schulz_;
  Tensor x_, partials_, norm_sums_, update_sums_;
  // Statistics steps only: X on the host (bf16 bits, fp32, stored layout) and the sums.
  std::vector<uint16_t> host_bits_;
  std::vector<float> host_x_, host_matrix_;
  std::vector<double> host_sums_;
};

}  // namespace cuda_optim
}  // namespace sinklab

#endif  // SINKLAB_OPTIM_CUDA_MULTI_TENSOR_GPU_H_

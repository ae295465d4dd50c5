// Muon: momentum orthogonalized by Newton-Schulz, for 2-D hidden matrices (Jordan et al.
// 2024, https://kellerjordan.github.io/posts/muon/, KellerJordan/Muon `muon.py`, functions
// `muon_update` and `Muon.step`; Liu et al. 2025, "Muon is Scalable for LLM Training", for
// the Moonshot scaling). Per parameter W [rows, cols] with gradient g, momentum m (zero at
// start), momentum coefficient beta, decoupled decay wd:
//
//   m <- beta m + (1 - beta) g                 muon.py: momentum.lerp_(grad, 1 - beta)
//   u = nesterov ? (1 - beta) g + beta m : m   muon.py: grad.lerp_(momentum, beta)
//   X = NewtonSchulz5(u, ns_steps)             optim/newton_schulz.h
//   scale = ORIGINAL: sqrt(max(1, rows / cols))   (muon.py)
//           MOONSHOT: 0.2 * sqrt(max(rows, cols)) (Liu et al. 2025, "consistent update RMS":
//                     update RMS ~ 0.2, AdamW's typical, so Muon can share AdamW's lr, wd)
//   W <- W (1 - lr wd) - lr scale X            decay on the old W, as muon.py's p.mul_
//
// lerp(a, b, w) = a + w (b - a); the two lerps of muon.py are exactly the first two lines.
// There is no bias correction, so `step` only advances step(). Rows and cols are the
// stored shape: for our Linear weights [out_features, in_features], as in PyTorch.
//
// CPU fp32 reference; the scratch (u, the Newton-Schulz workspace) and the momentum come
// from the state arena at construction; Step allocates nothing (statistics included).
// CUDA parameters take optim/cuda/multi_tensor_gpu.h: the matrices grouped by wide shape,
// each group's momentum, normalization and bf16 Newton-Schulz run batched, the clip factor
// read on the device (set_grad_scale), the bf16 compute copies written by the update.
#ifndef SINKLAB_OPTIM_MUON_H_
#define SINKLAB_OPTIM_MUON_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "configs/sinklab.pb.h"
#include "core/arena.h"
#include "core/tensor.h"
#include "layers/parameter.h"
#include "optim/newton_schulz.h"
#include "optim/optimizer.h"

namespace sinklab {
namespace cuda_optim {
class MultiTensorMuon;
}  // namespace cuda_optim

// GPU data parallelism for Muon (optim/cuda/multi_tensor_gpu.h, MultiTensorMuon): rank
// `rank` of `world` orthogonalizes one slice of every shape group and `all_gather` shares
// the slices. Without all_gather (the default) every matrix is orthogonalized here.
struct MuonSharding {
  int rank = 0;
  int world = 1;
  // Enqueues an all-gather of `bytes` from every rank's `send` into `recv` (rank q's bytes
  // at recv + q * bytes; send may be recv + rank * bytes, in place), ordered after the work
  // queued on the CUDA legacy default stream so far and before the work queued on it after
  // the call returns (the production one: NcclCommunicator::EnqueueAllGatherBytes).
  std::function<void(const void* send, void* recv, int64_t bytes)> all_gather;
};

// The update scale of a [rows, cols] matrix under `scaling` (formulas above).
float MuonScale(MuonConfig::Scaling scaling, int64_t rows, int64_t cols);

class Muon : public Optimizer {
 public:
  // params: 2-D fp32 CPU masters and grads of equal shape, distinct names (routing refuses
  // other shapes with a Status before this point: here they are CHECKed); weight_decays[i]
  // is params[i]'s decay. The config must be valid (momentum in [0, 1), ns_steps >= 1:
  // config validation). Allocates m (zero) per parameter and the scratch from the arena.
  // `sharding` (CUDA parameters only) splits the orthogonalization across data-parallel
  // ranks.
  Muon(const MuonConfig& config, std::vector<Parameter*> params, std::vector<float> weight_decays,
       Arena* state_arena, MuonSharding sharding = MuonSharding());

  // One update of every parameter with learning rate `lr` (the Muon group's lr times the
  // schedule's factor). Grads are read, not modified. With record_stats on, also fills
  // last_update_sum_squares() and last_sigma_max().
  void Step(float lr, int64_t step) override;

  // "muon.m.<param name>" per parameter, in order.
  std::vector<StateTensor> StateTensors() const override;

  bool writes_compute_copies() const override { return multi_tensor_ != nullptr; }

  const std::vector<Parameter*>& params() const { return params_; }
  float weight_decay(size_t i) const { return weight_decays_[i]; }
  float scale(size_t i) const { return scales_[i]; }

  // Per parameter, after a Step with record_stats on: a power-iteration estimate
  // (optim/matrix_ops.h, kSigmaMaxIterations rounds) of the largest singular value of the
  // orthogonalized update X, before scale and lr.
  const std::vector<double>& last_sigma_max() const { return sigma_max_; }
  static constexpr int kSigmaMaxIterations = 10;

 private:
  float beta_;
  bool nesterov_;
  int ns_steps_;
  std::vector<Parameter*> params_;
  std::vector<float> weight_decays_;       // per parameter
  std::vector<float> scales_;              // per parameter
  std::vector<Tensor> m_;                  // per parameter, fp32, shape of the parameter
  Tensor update_;                          // CPU scratch [largest numel]: u, then X in place
  NewtonSchulzWorkspace workspace_;        // CPU only
  std::vector<double> sigma_max_;          // per parameter
  std::vector<double> power_u_, power_v_;  // power-iteration scratch [largest rows/cols]
  // CUDA parameters: the grouped multi-tensor update (its own bf16 scratch); null on the CPU.
  std::shared_ptr<cuda_optim::MultiTensorMuon> multi_tensor_;
};

}  // namespace sinklab

#endif  // SINKLAB_OPTIM_MUON_H_

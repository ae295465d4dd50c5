// AdamW: Adam with decoupled weight decay (Loshchilov & Hutter 2019, "Decoupled Weight Decay
// Regularization", Algorithm 2), in the exact arithmetic of PyTorch's torch.optim.AdamW
// (https://pytorch.org/docs/stable/generated/torch.optim.AdamW.html, single-tensor path,
// amsgrad=False). For step t >= 1, gradient g, per parameter with decay coefficient wd:
//
//   p <- p * (1 - lr * wd)                          decoupled decay, on the old p
//   m <- b1 * m + (1 - b1) * g                      first moment
//   v <- b2 * v + (1 - b2) * g^2                    second moment
//   p <- p - (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
//
// which equals p <- p - lr * (m_hat / (sqrt(v_hat) + eps) + wd * p_old) with
// m_hat = m / (1 - b1^t), v_hat = v / (1 - b2^t). Bias corrections are computed in double.
// wd is config.weight_decay() or 0 per parameter kind (optim/param_groups.h).
//
// CPU fp32 reference: elementwise, parallel over elements with OpenMP (deterministic: no
// reductions). CUDA parameters take the multi-tensor kernel of optim/cuda/multi_tensor_gpu.h:
// one launch for every parameter, the clip factor read on the device (set_grad_scale) and
// the bf16 compute copies written by the same kernel (writes_compute_copies).
#ifndef SINKLAB_OPTIM_ADAMW_H_
#define SINKLAB_OPTIM_ADAMW_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "configs/sinklab.pb.h"
#include "core/arena.h"
#include "core/tensor.h"
#include "layers/parameter.h"
#include "optim/optimizer.h"

struct CUstream_st;  // cudaStream_t is CUstream_st* (cuda_runtime.h)

namespace sinklab {
namespace cuda_optim {
class MultiTensorAdamW;
}  // namespace cuda_optim

class AdamW : public Optimizer {
 public:
  // params: fp32 master and grad of equal shape, distinct names, on the state arena's device.
  // Allocates m and v (fp32, each with its parameter's shape, zero) from `state_arena` here,
  // once. The config's betas/eps must be valid (1 > b >= 0, eps > 0): config validation
  // rejects bad values before this point, so here they are CHECKed.
  // Each parameter's decay is WeightDecayFor(kind, config) (optim/param_groups.h).
  AdamW(const OptimConfig& config, std::vector<Parameter*> params, Arena* state_arena);
  // The same with explicit decoupled decay coefficients, weight_decays[i] for params[i]
  // (what OptimizerSet passes after param_override).
  AdamW(const OptimConfig& config, std::vector<Parameter*> params, std::vector<float> weight_decays,
        Arena* state_arena);

  // Updates every parameter's master from its grad (grads are read, not modified); with
  // record_stats on, also fills last_update_sum_squares() (optim/optimizer.h). Non-finite
  // grads are not screened here: the trainer skips the step when the grad norm is not finite.
  void Step(float lr, int64_t step) override;

  // "adamw.m.<param name>" and "adamw.v.<param name>", per parameter in order, m before v.
  std::vector<StateTensor> StateTensors() const override;

  bool writes_compute_copies() const override { return multi_tensor_ != nullptr; }

  // CUDA parameters only: the stream the following Steps are queued on (null, the default:
  // the legacy default stream). The caller orders it with the default stream
  // (OptimizerSet runs AdamW beside Muon this way). A recorded Step waits for it on the host.
  void set_stream(CUstream_st* stream) { stream_ = stream; }

  const std::vector<Parameter*>& params() const { return params_; }
  // Decoupled decay coefficient of params()[i].
  float weight_decay(size_t i) const { return weight_decays_[i]; }

 private:
  float beta1_, beta2_, eps_;
  std::vector<Parameter*> params_;
  std::vector<float> weight_decays_;  // per parameter
  std::vector<Tensor> m_, v_;         // per parameter, fp32, shape of the parameter
  CUstream_st* stream_ = nullptr;     // CUDA only
  // CUDA parameters: the multi-tensor update (optim/cuda/multi_tensor_gpu.h); null on the
  // CPU.
  std::shared_ptr<cuda_optim::MultiTensorAdamW> multi_tensor_;
};

}  // namespace sinklab

#endif  // SINKLAB_OPTIM_ADAMW_H_

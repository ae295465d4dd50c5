// Gradient-norm clipping and whole-gradient helpers over a list of Parameters (fp32 grads).
// CPU reference; parameters on a CUDA device take the GPU kernels of optim/cuda/ (the norm
// is read to the host once per call).
#ifndef SINKLAB_OPTIM_CLIP_H_
#define SINKLAB_OPTIM_CLIP_H_

#include <vector>

#include "layers/parameter.h"

namespace sinklab {

// sqrt(sum over all params, all elements of grad^2): the global L2 norm. Accumulated in
// double in a fixed order (parameter by parameter, elements in order), so the result does
// not depend on the thread count. Inf/NaN in any grad gives an Inf/NaN norm.
float GlobalGradNorm(const std::vector<Parameter*>& params);
// The square of that norm, in double (sums that data-parallel ranks add up).
double GradSumOfSquares(const std::vector<Parameter*>& params);

// Global-norm clipping as torch.nn.utils.clip_grad_norm_
// (https://pytorch.org/docs/stable/generated/torch.nn.utils.clip_grad_norm_.html; Pascanu
// et al. 2013): when norm > max_norm, every grad is multiplied by max_norm / (norm + 1e-6).
// max_norm <= 0 disables clipping. Returns the norm before clipping; a non-finite norm is
// returned as is (for the trainer to report and skip the step) and the grads are left alone.
float ClipGradNorm(const std::vector<Parameter*>& params, float max_norm);

// grad <- grad * factor for every parameter (e.g. 1 / accumulation steps).
void ScaleGrads(const std::vector<Parameter*>& params, float factor);

// grad <- 0 for every parameter (Backward accumulates with +=).
void ZeroGrads(const std::vector<Parameter*>& params);

}  // namespace sinklab

#endif  // SINKLAB_OPTIM_CLIP_H_

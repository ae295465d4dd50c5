// Per-tensor GPU helpers for parameters whose fp32 master/grad live on a CUDA device: the
// gradient helpers of optim/clip.h, the compute-copy refresh, the single-matrix Newton-Schulz
// normalization. The optimizers' own updates are multi-tensor (optim/cuda/multi_tensor_gpu.h).
// Same formulas as the CPU code, fp32 arithmetic.
//
// Stream: everything runs on the legacy default stream (stream 0). The CUDA backend's
// stream is a blocking stream, so stream 0 work is ordered after every kernel the model
// queued before it and before every kernel queued after it, with no host synchronization.
//
// Reductions (sums of squares) are deterministic: fixed grid-stride partials per block,
// then one block sums the partials in order. Results land in `DeviceSums` slots, read to
// the host in one copy when needed.
#ifndef SINKLAB_OPTIM_CUDA_OPTIM_KERNELS_H_
#define SINKLAB_OPTIM_CUDA_OPTIM_KERNELS_H_

#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace sinklab {
namespace cuda_optim {

// A device array of `slots` doubles plus the partials scratch of the reductions; allocated
// once (cudaMalloc at construction, never in a step).
class DeviceSums {
 public:
  explicit DeviceSums(int slots);
  ~DeviceSums();
  DeviceSums(const DeviceSums&) = delete;
  DeviceSums& operator=(const DeviceSums&) = delete;

  int slots() const { return slots_; }
  double* slot(int i) const;       // device pointer of slot i
  double* partials() const { return partials_; }
  // Copies every slot to the host (synchronizes stream 0).
  std::vector<double> ToHost() const;

 private:
  int slots_;
  double* slots_device_ = nullptr;
  double* partials_ = nullptr;
};

// sum x^2 of an fp32 device tensor into `sums.slot(slot)`.
void SumOfSquares(const Tensor& x, DeviceSums& sums, int slot);
// The sum of slots [0, n) into slot `out` >= n (a fixed order).
void SumSlots(DeviceSums& sums, int n, int out);
// x *= factor (fp32).
void Scale(const Tensor& x, float factor);
// x = 0 (any dtype).
void Zero(const Tensor& x);
// dst = src converted to dst's dtype (the bf16 compute copy of an fp32 master).
void Convert(const Tensor& dst, const Tensor& src);

// x *= 1 / (sqrt(*sum_sq) + eps) (Frobenius normalization read on the device); x bf16/f32.
void ScaleByInverseNorm(const Tensor& x, const double* sum_sq, float eps);
// sum x^2 of a bf16 or fp32 tensor into sums.slot(slot).
void SumOfSquaresAny(const Tensor& x, DeviceSums& sums, int slot);

}  // namespace cuda_optim
}  // namespace sinklab

#endif  // SINKLAB_OPTIM_CUDA_OPTIM_KERNELS_H_

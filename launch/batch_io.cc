#include "launch/batch_io.h"

#include <vector>

#include "core/arena.h"

namespace sinklab {
namespace {

// Host staging for device batches, grown once to the largest batch seen.
struct Staging {
  std::vector<int32_t> inputs, targets;
  void Fit(int64_t n) {
    if (static_cast<int64_t>(inputs.size()) < n) {
      inputs.resize(n);
      targets.resize(n);
    }
  }
};

Staging& ThreadStaging() {
  thread_local Staging staging;
  return staging;
}

template <typename Fill>
void Load(const Tensor& inputs, const Tensor& targets, Fill fill) {
  SL_CHECK_MSG(inputs.dtype() == DType::kI32 && targets.numel() == inputs.numel(),
               "batch tensors must be i32 of one shape");
  if (inputs.device() == Device::kCpu) return fill(inputs.i32(), targets.i32());
  Staging& staging = ThreadStaging();
  staging.Fit(inputs.numel());
  fill(staging.inputs.data(), staging.targets.data());
  QueueTensorFromHost(inputs, staging.inputs.data());  // no host wait (core/arena.h)
  QueueTensorFromHost(targets, staging.targets.data());
}

}  // namespace

void LoadTrainBatch(Loader& loader, int64_t step, int micro_step, const Tensor& inputs,
                    const Tensor& targets) {
  const int micro_batch = static_cast<int>(inputs.dim(0));
  Load(inputs, targets, [&](int32_t* in, int32_t* tgt) {
    loader.GetBatch(step, micro_step, micro_batch, in, tgt);
  });
}

void LoadEvalBatch(const Loader& loader, int64_t batch, const Tensor& inputs,
                   const Tensor& targets) {
  const int micro_batch = static_cast<int>(inputs.dim(0));
  Load(inputs, targets, [&](int32_t* in, int32_t* tgt) {
    loader.GetEvalBatch(batch, micro_batch, in, tgt);
  });
}

}  // namespace sinklab

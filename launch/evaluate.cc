#include "launch/evaluate.h"

#include "launch/batch_io.h"

namespace sinklab {

float EvaluateLoss(Model& model, const Loader& val, int batches, Tensor inputs, Tensor targets) {
  double sum = 0;
  for (int b = 0; b < batches; ++b) {
    LoadEvalBatch(val, b, inputs, targets);
    sum += model.Forward(inputs, targets);
  }
  return batches > 0 ? static_cast<float>(sum / batches) : 0.0f;
}

}  // namespace sinklab

// Test helper: one forward + backward of a Model at a given OpenMP thread count, returning
// the loss followed by every parameter gradient, so determinism tests can compare runs bit
// for bit. The shape (vocab 37, D 32, 4 heads / 2 kv heads, F 48, B 3, T 19, init std 0.2) has
// rows and columns that are not multiples of any kernel tile.
#ifndef SINKLAB_TESTS_LAYERS_MODEL_DETERMINISM_H_
#define SINKLAB_TESTS_LAYERS_MODEL_DETERMINISM_H_

#include <omp.h>

#include <vector>

#include "configs/sinklab.pb.h"
#include "core/arena.h"
#include "layers/cpu/cpu_backend.h"
#include "layers/model.h"
#include "tests/layers/gradient_check.h"

namespace sinklab {

// `config` supplies the layer count and the switches; the sizes above replace its own.
inline std::vector<float> LossAndGradients(ModelConfig config, int threads) {
  omp_set_num_threads(threads);
  CpuBackend backend;
  Arena arena(Device::kCpu, size_t{1} << 20);
  TensorPool pool;
  config.set_vocab_size(37);
  config.set_d_model(32);
  config.set_n_heads(4);
  config.set_n_kv_heads(2);
  config.set_ffn_hidden(48);
  config.set_init_std(0.2f);
  const int B = 3, T = 19;
  Model model(config, B, T, &backend, &arena);
  model.InitParameters(3);
  Tensor tokens = pool.Ints({B, T}, RandomTokens(B * T, 37, 1));
  Tensor targets = pool.Ints({B, T}, RandomTokens(B * T, 37, 2));
  std::vector<float> all = {model.Forward(tokens, targets)};
  model.Backward(1.0f);
  for (Parameter* p : model.parameters()) {
    const std::vector<float> g = Values(p->grad);
    all.insert(all.end(), g.begin(), g.end());
  }
  return all;
}

}  // namespace sinklab

#endif  // SINKLAB_TESTS_LAYERS_MODEL_DETERMINISM_H_

// Quintic Newton-Schulz orthogonalization, the core of Muon (Jordan et al. 2024, "Muon: An
// optimizer for hidden layers in neural networks", https://kellerjordan.github.io/posts/muon/;
// KellerJordan/Muon `muon.py`, `zeropower_via_newtonschulz5`). For G [rows, cols]:
//
//   X = G / (||G||_F + 1e-7), transposed to the wide orientation [n, m], n = min(rows, cols)
//   repeat `steps` times:  A = X X^T  [n, n];  B = b A + c A A;  X = a X + B X
//   transposed back to [rows, cols]
//
// with (a, b, c) = (3.4445, -4.7750, 2.0315). Each step maps every singular value s of X to
// p(s) = a s + b s^3 + c s^5 and keeps the singular vectors, so X -> U S' V^T with S' near,
// not at, the identity: the coefficients maximize the slope at 0 and trade exactness for
// speed: after 5 steps every singular value s >= 3e-3 of G / ||G||_F lands in [0.68, 1.21]
// (p^5 on a fine grid; tests/optim/newton_schulz_test.cc checks it with an fp64 SVD), while
// smaller ones stay short (p^5(s) ~ 488 s near 0). Normalizing by ||G||_F puts every
// singular value in [0, 1], where the iteration is designed to act.
//
// CPU fp32 reference, deterministic: the products split output rows across OpenMP threads
// (optim/matrix_ops.h). The GPU version will run the same iteration in bf16, as muon.py does.
#ifndef SINKLAB_OPTIM_NEWTON_SCHULZ_H_
#define SINKLAB_OPTIM_NEWTON_SCHULZ_H_

#include <cstdint>

#include "core/arena.h"
#include "core/tensor.h"

namespace sinklab {

// The quintic's coefficients (muon.py).
constexpr float kNewtonSchulzA = 3.4445f;
constexpr float kNewtonSchulzB = -4.7750f;
constexpr float kNewtonSchulzC = 2.0315f;
// Added to ||G||_F before dividing (muon.py), so a zero G gives a zero X.
constexpr float kNewtonSchulzEps = 1e-7f;

// Scratch of NewtonSchulz5, carved from an arena once (at the optimizer's construction):
// two [n, m] iterates and two [n, n] Gram-sized matrices.
class NewtonSchulzWorkspace {
 public:
  NewtonSchulzWorkspace() = default;
  // Room for every [rows, cols] with rows * cols <= max_numel and min(rows, cols) <=
  // max_small_dim. `arena` must be a CPU arena.
  NewtonSchulzWorkspace(int64_t max_numel, int64_t max_small_dim, Arena* arena);

  bool Fits(int64_t rows, int64_t cols) const;

 private:
  friend void NewtonSchulz5(const Tensor& g, int steps, NewtonSchulzWorkspace& workspace,
                            const Tensor& out);
  int64_t max_numel_ = 0, max_small_dim_ = 0;
  Tensor x_, y_;       // [max_numel]: the iterate X and the next one
  Tensor gram_, poly_; // [max_small_dim^2]: A = X X^T and B = b A + c A A
};

// out [rows, cols] = the Newton-Schulz orthogonalization of g [rows, cols] (both fp32 CPU,
// rank 2) after `steps` (>= 1) iterations. out may alias g: g is read into the workspace
// before out is written. The workspace must fit [rows, cols].
void NewtonSchulz5(const Tensor& g, int steps, NewtonSchulzWorkspace& workspace,
                   const Tensor& out);

}  // namespace sinklab

#endif  // SINKLAB_OPTIM_NEWTON_SCHULZ_H_

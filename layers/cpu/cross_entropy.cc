// CPU cross-entropy over logits: loss_n = log sum_v exp(z_nv) - z_n,target (softmax + NLL),
// dz_nv = (softmax(z_n)_v - [v == target]) * dloss. Rows with target -1 are ignored.
#include <cmath>

#include "absl/strings/str_cat.h"
#include "layers/cpu/cpu_backend.h"
#include "layers/cpu/vector_math.h"

namespace sinklab {

void CpuBackend::CrossEntropyForward(const Tensor& losses, const Tensor& lse,
                                     const Tensor& logits, const Tensor& targets) {
  CheckCpuF32(logits, "CrossEntropyForward logits");
  const int64_t vocab = logits.dim(-1), n = logits.numel() / vocab;
  SL_CHECK_MSG(losses.numel() == n && lse.numel() == n && targets.numel() == n,
               absl::StrCat("CrossEntropyForward: logits ", logits.ShapeString(), " targets ",
                            targets.ShapeString()));
  const int32_t* tgt = targets.i32();
  for (int64_t i = 0; i < n; ++i) {
    SL_CHECK_MSG(tgt[i] >= -1 && tgt[i] < vocab,
                 absl::StrCat("target ", tgt[i], " at ", i, " outside [-1, ", vocab, ")"));
  }
#pragma omp parallel for schedule(static) if (n * vocab > 65536)
  for (int64_t i = 0; i < n; ++i) {
    const float* z = logits.f32() + i * vocab;
    float max = z[0];
#pragma omp simd reduction(max : max)
    for (int64_t v = 1; v < vocab; ++v) max = z[v] > max ? z[v] : max;
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int64_t v = 0; v < vocab; ++v) sum += VecExp(z[v] - max);
    const float row_lse = max + std::log(sum);
    lse.f32()[i] = row_lse;
    losses.f32()[i] = tgt[i] < 0 ? 0.0f : row_lse - z[tgt[i]];
  }
}

void CpuBackend::CrossEntropyBackward(const Tensor& dlogits, const Tensor& logits,
                                      const Tensor& lse, const Tensor& targets, float dloss) {
  CheckCpuF32(logits, "CrossEntropyBackward logits");
  CheckSameShape(dlogits, logits, "CrossEntropyBackward dlogits");
  const int64_t vocab = logits.dim(-1), n = logits.numel() / vocab;
  const int32_t* tgt = targets.i32();
#pragma omp parallel for schedule(static) if (n * vocab > 65536)
  for (int64_t i = 0; i < n; ++i) {
    const float* z = logits.f32() + i * vocab;  // may alias dz: each element read, then written
    float* dz = dlogits.f32() + i * vocab;
    if (tgt[i] < 0) {
      for (int64_t v = 0; v < vocab; ++v) dz[v] = 0.0f;
      continue;
    }
    const float row_lse = lse.f32()[i];
#pragma omp simd
    for (int64_t v = 0; v < vocab; ++v) dz[v] = VecExp(z[v] - row_lse) * dloss;
    dz[tgt[i]] -= dloss;
  }
}

}  // namespace sinklab

// CPU token embedding: a row gather forward, a row scatter-add backward.
#include <cstring>

#include "absl/strings/str_cat.h"
#include "layers/cpu/cpu_backend.h"

namespace sinklab {

void CpuBackend::EmbeddingForward(const Tensor& out, const Tensor& tokens, const Tensor& table) {
  CheckCpuF32(out, "EmbeddingForward out");
  CheckCpuF32(table, "EmbeddingForward table");
  const int64_t n = tokens.numel(), vocab = table.dim(0), d = table.dim(1);
  SL_CHECK_MSG(out.numel() == n * d, absl::StrCat("EmbeddingForward: out ", out.ShapeString(),
                                                  " tokens ", tokens.ShapeString(), " table ",
                                                  table.ShapeString()));
  const int32_t* ids = tokens.i32();
  for (int64_t i = 0; i < n; ++i) {
    SL_CHECK_MSG(ids[i] >= 0 && ids[i] < vocab,
                 absl::StrCat("token ", ids[i], " at ", i, " outside vocab ", vocab));
    std::memcpy(out.f32() + i * d, table.f32() + ids[i] * d, d * sizeof(float));
  }
}

void CpuBackend::EmbeddingBackward(const Tensor& dtable, const Tensor& dout,
                                   const Tensor& tokens) {
  CheckCpuF32(dtable, "EmbeddingBackward dtable");
  CheckCpuF32(dout, "EmbeddingBackward dout");
  const int64_t n = tokens.numel(), vocab = dtable.dim(0), d = dtable.dim(1);
  SL_CHECK(dout.numel() == n * d);
  const int32_t* ids = tokens.i32();
  // Serial over tokens, in order: a repeated token's contributions always add up in the
  // same order (the scatter is ~N*D flops, nothing to parallelise).
  for (int64_t i = 0; i < n; ++i) {
    SL_CHECK(ids[i] >= 0 && ids[i] < vocab);
    float* row = dtable.f32() + ids[i] * d;
    const float* g = dout.f32() + i * d;
    for (int64_t j = 0; j < d; ++j) row[j] += g[j];
  }
}

}  // namespace sinklab

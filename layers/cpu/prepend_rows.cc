// CPU PrependRows: concatenation of learned rows in front of every sequence (prefix sink
// tokens, Xiao et al. 2023; the KV-bias key/value, Sun et al. 2024), and its backward.
#include <cstring>

#include "absl/strings/str_cat.h"
#include "layers/cpu/cpu_backend.h"

namespace sinklab {
namespace {

struct PrependShape {
  int64_t batch, prefix_rows, rows, channels;  // B, P, S, C
};

PrependShape CheckPrependShapes(const Tensor& out, const Tensor& prefix, const Tensor& inp) {
  SL_CHECK_MSG(out.rank() >= 2 && inp.rank() >= 2 && out.dim(0) == inp.dim(0) &&
                   out.dim(1) >= inp.dim(1) && out.dtype() == inp.dtype(),
               absl::StrCat("PrependRows: out ", out.ShapeString(), " inp ", inp.ShapeString()));
  PrependShape shape{inp.dim(0), out.dim(1) - inp.dim(1), inp.dim(1), 0};
  shape.channels = inp.numel() / (shape.batch * shape.rows);
  SL_CHECK_MSG(out.numel() == shape.batch * (shape.prefix_rows + shape.rows) * shape.channels &&
                   prefix.numel() == shape.prefix_rows * shape.channels,
               absl::StrCat("PrependRows: out ", out.ShapeString(), " prefix ",
                            prefix.ShapeString(), " inp ", inp.ShapeString()));
  return shape;
}

}  // namespace

void CpuBackend::PrependRows(const Tensor& out, const Tensor& prefix, const Tensor& inp) {
  const PrependShape shape = CheckPrependShapes(out, prefix, inp);
  SL_CHECK(prefix.dtype() == out.dtype() && out.device() == Device::kCpu);
  const size_t item = DTypeSize(out.dtype());
  const size_t prefix_bytes = shape.prefix_rows * shape.channels * item;
  const size_t seq_bytes = shape.rows * shape.channels * item;
  auto* dst = static_cast<char*>(out.data());
  const auto* src = static_cast<const char*>(inp.data());
  for (int64_t b = 0; b < shape.batch; ++b) {
    char* seq = dst + b * (prefix_bytes + seq_bytes);
    std::memcpy(seq, prefix.data(), prefix_bytes);
    std::memcpy(seq + prefix_bytes, src + b * seq_bytes, seq_bytes);
  }
}

void CpuBackend::PrependRowsBackward(const Tensor& dprefix, const Tensor& dinp,
                                     const Tensor& dout) {
  CheckCpuF32(dout, "PrependRowsBackward dout");
  const int64_t batch = dout.dim(0), total = dout.dim(1);
  const int64_t prefix_rows =
      !dinp.empty() ? total - dinp.dim(1) : dprefix.numel() * total * batch / dout.numel();
  const int64_t channels = dout.numel() / (batch * total), rows = total - prefix_rows;
  const float* g = dout.f32();
  if (!dprefix.empty()) {
    CheckCpuF32(dprefix, "PrependRowsBackward dprefix");
    SL_CHECK(dprefix.numel() == prefix_rows * channels);
    // Sequences in order (deterministic).
    float* dp = dprefix.f32();
    for (int64_t b = 0; b < batch; ++b) {
      const float* seq = g + b * total * channels;
      for (int64_t i = 0; i < prefix_rows * channels; ++i) dp[i] += seq[i];
    }
  }
  if (!dinp.empty()) {
    CheckCpuF32(dinp, "PrependRowsBackward dinp");
    SL_CHECK(dinp.numel() == batch * rows * channels);
    float* dx = dinp.f32();
    for (int64_t b = 0; b < batch; ++b) {
      const float* seq = g + (b * total + prefix_rows) * channels;
      float* dst = dx + b * rows * channels;
      for (int64_t i = 0; i < rows * channels; ++i) dst[i] += seq[i];
    }
  }
}

}  // namespace sinklab

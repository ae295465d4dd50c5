// CpuBackend small helpers: fill, copies, conversions, residual add, host reductions.
#include "layers/cpu/cpu_backend.h"

#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace sinklab {

void CheckSameShape(const Tensor& a, const Tensor& b, const char* what) {
  bool same = a.rank() == b.rank();
  for (int i = 0; same && i < a.rank(); ++i) same = a.dim(i) == b.dim(i);
  SL_CHECK_MSG(same, absl::StrCat(what, ": shapes ", a.ShapeString(), " and ",
                                  b.ShapeString(), " differ"));
}

void CheckCpuF32(const Tensor& x, const char* what) {
  SL_CHECK_MSG(x.device() == Device::kCpu && x.dtype() == DType::kF32,
               absl::StrCat(what, ": expected a CPU F32 tensor, got ", DTypeName(x.dtype()),
                            " on ", DeviceName(x.device())));
}

void CpuBackend::Fill(const Tensor& x, float value) {
  CheckCpuF32(x, "Fill");
  float* p = x.f32();
  const int64_t n = x.numel();
  for (int64_t i = 0; i < n; ++i) p[i] = value;
}

void CpuBackend::Copy(const Tensor& dst, const Tensor& src) {
  SL_CHECK_MSG(dst.dtype() == src.dtype() && dst.numel() == src.numel(),
               absl::StrCat("Copy: ", dst.ShapeString(), " <- ", src.ShapeString()));
  if (dst.data() != src.data()) std::memcpy(dst.data(), src.data(), src.nbytes());
}

void CpuBackend::Convert(const Tensor& dst, const Tensor& src) {
  SL_CHECK_MSG(dst.numel() == src.numel(),
               absl::StrCat("Convert: ", dst.ShapeString(), " <- ", src.ShapeString()));
  const int64_t n = src.numel();
  if (dst.dtype() == src.dtype()) {
    Copy(dst, src);
  } else if (dst.dtype() == DType::kBF16 && src.dtype() == DType::kF32) {
    for (int64_t i = 0; i < n; ++i) dst.bf16()[i] = FloatToBF16(src.f32()[i]);
  } else if (dst.dtype() == DType::kF32 && src.dtype() == DType::kBF16) {
    for (int64_t i = 0; i < n; ++i) dst.f32()[i] = BF16ToFloat(src.bf16()[i]);
  } else {
    SL_CHECK_MSG(false, absl::StrCat("Convert: unsupported ", DTypeName(src.dtype()), " -> ",
                                     DTypeName(dst.dtype())));
  }
}

void CpuBackend::CopyFromHost(const Tensor& dst, const void* host_src) {
  std::memcpy(dst.data(), host_src, dst.nbytes());
}

void CpuBackend::CopyToHost(void* host_dst, const Tensor& src) {
  std::memcpy(host_dst, src.data(), src.nbytes());
}

void CpuBackend::AddInto(const Tensor& dst, const Tensor& src) {
  CheckCpuF32(dst, "AddInto");
  CheckSameShape(dst, src, "AddInto");
  float* d = dst.f32();
  const float* s = src.f32();
  const int64_t n = dst.numel();
  for (int64_t i = 0; i < n; ++i) d[i] += s[i];
}

double CpuBackend::SumToHost(const Tensor& x) {
  CheckCpuF32(x, "SumToHost");
  double sum = 0;
  const float* p = x.f32();
  const int64_t n = x.numel();
  for (int64_t i = 0; i < n; ++i) sum += p[i];
  return sum;
}

double CpuBackend::MaxAbsToHost(const Tensor& x) {
  CheckCpuF32(x, "MaxAbsToHost");
  float max_abs = 0;  // NaNs are skipped, as std::fmax and the GPU's fmaxf do
  const float* p = x.f32();
  for (int64_t i = 0; i < x.numel(); ++i) max_abs = std::fmax(max_abs, std::fabs(p[i]));
  return max_abs;
}

void CpuBackend::MeanLoss(const Tensor& out, const Tensor& losses, const Tensor& targets) {
  SL_CHECK_MSG(
      out.numel() == 1 && targets.dtype() == DType::kI32 && losses.numel() == targets.numel(),
      "MeanLoss needs out [1], losses [N] f32 and targets [N] i32");
  CheckCpuF32(out, "MeanLoss");
  const int64_t count = CountNonNegative(targets);
  out.f32()[0] =
      count > 0 ? static_cast<float>(SumToHost(losses) / static_cast<double>(count)) : 0.0f;
}

int64_t CpuBackend::CountNonNegative(const Tensor& x) {
  int64_t count = 0;
  const int32_t* p = x.i32();
  const int64_t n = x.numel();
  for (int64_t i = 0; i < n; ++i) count += p[i] >= 0;
  return count;
}

}  // namespace sinklab

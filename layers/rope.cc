#include "layers/rope.h"

#include <cmath>
#include <vector>

namespace sinklab {

Rope::Rope(Backend* backend, Arena* arena, int64_t seq_len, int64_t head_dim, float base)
    : backend_(backend) {
  SL_CHECK(head_dim % 2 == 0);
  const int64_t half = head_dim / 2;
  cos_ = arena->Allocate(DType::kF32, {seq_len, half});
  sin_ = arena->Allocate(DType::kF32, {seq_len, half});
  std::vector<float> cos_host(seq_len * half), sin_host(seq_len * half);
  for (int64_t i = 0; i < half; ++i) {
    // HF Llama: inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2).float() / dim)).
    const float exponent = static_cast<float>(2 * i) / static_cast<float>(head_dim);
    const float inv_freq = 1.0f / std::pow(base, exponent);
    for (int64_t t = 0; t < seq_len; ++t) {
      const float angle = static_cast<float>(t) * inv_freq;
      cos_host[t * half + i] = static_cast<float>(std::cos(static_cast<double>(angle)));
      sin_host[t * half + i] = static_cast<float>(std::sin(static_cast<double>(angle)));
    }
  }
  backend_->CopyFromHost(cos_, cos_host.data());
  backend_->CopyFromHost(sin_, sin_host.data());
}

void Rope::Forward(const Tensor& out, const Tensor& inp) const {
  backend_->RopeForward(out, inp, cos_, sin_);
}

void Rope::Backward(const Tensor& dinp, const Tensor& dout, GradWrite dinp_write) const {
  backend_->RopeBackward(dinp, dout, cos_, sin_, dinp_write);
}

}  // namespace sinklab

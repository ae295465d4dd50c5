#include "layers/block.h"

#include "absl/strings/str_cat.h"
#include "layers/model_dims.h"

namespace sinklab {

Block::Block(Backend* backend, Arena* arena, int index, const ModelConfig& config,
             int64_t batch, int64_t seq_len, const Rope* rope)
    : backend_(backend),
      attn_norm_(backend, arena, absl::StrCat("layers.", index, ".attn_norm"), config.d_model(),
                 batch * seq_len, config.norm_eps()),
      attn_(backend, arena, absl::StrCat("layers.", index, ".attn"), config, batch, seq_len,
            rope),
      ffn_norm_(backend, arena, absl::StrCat("layers.", index, ".ffn_norm"), config.d_model(),
                batch * seq_len, config.norm_eps()),
      ffn_(backend, arena, absl::StrCat("layers.", index, ".ffn"), config.d_model(),
           config.ffn_hidden(), batch * seq_len) {
  for (Tensor* t : {&attn_in_, &ffn_in_, &mid_, &d_attn_in_, &d_ffn_in_}) {
    *t = arena->Allocate(backend->activation_dtype(), {batch, seq_len, config.d_model()});
  }
}

std::vector<Parameter*> Block::parameters() {
  std::vector<Parameter*> params = {attn_norm_.weight()};
  for (Parameter* p : attn_.parameters()) params.push_back(p);
  params.push_back(ffn_norm_.weight());
  for (Parameter* p : ffn_.parameters()) params.push_back(p);
  return params;
}

std::vector<Parameter*> Block::output_projections() {
  return {attn_.output_projection(), ffn_.output_projection()};
}

void Block::Forward(const Tensor& out, const Tensor& inp) {
  attn_norm_.Forward(attn_in_, inp);
  attn_.Forward(mid_, attn_in_, /*residual=*/inp);  // mid = inp + attention(norm(inp))
  ffn_norm_.Forward(ffn_in_, mid_);
  ffn_.Forward(out, ffn_in_, /*residual=*/mid_);  // out = mid + FFN(norm(mid))
}

void Block::Backward(const Tensor& dinp, const Tensor& dout, const Tensor& inp) {
  // One residual gradient d, updated in place (each stage reads d before it is changed):
  // out = mid + FFN(norm(mid)): d_mid = dout + norm'(FFN'(dout));
  // mid = inp + Attention(norm(inp)): dinp = d_mid + norm'(Attention'(d_mid)).
  if (dinp.data() != dout.data()) backend_->Copy(dinp, dout);
  const Tensor& d = dinp;
  ffn_.Backward(d_ffn_in_, d, ffn_in_);
  ffn_norm_.Backward(d, d_ffn_in_, mid_, GradWrite::kAccumulate);  // now d_mid
  attn_.Backward(d_attn_in_, d, attn_in_);
  attn_norm_.Backward(d, d_attn_in_, inp, GradWrite::kAccumulate);  // now dinp
}

}  // namespace sinklab

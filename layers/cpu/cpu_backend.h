// CpuBackend: the fp32 reference implementation of Backend (layers/backend.h). Simple and
// exact enough for finite-difference gradient checks; the matmuls and attention are written
// to be fast on a few cores (OpenMP) while staying deterministic for any thread count.
//
// The member functions are defined by layer, one file each:
//   cpu_backend.cc (helpers), matmul.cc, embedding.cc, rmsnorm.cc, rope.cc, attention.cc
//   (+ attention_normalizer.cc: the one normalizer switch), prepend_rows.cc, gate.cc,
//   swiglu.cc, cross_entropy.cc; shared numerics: gemm.h (the blocked matrix product behind
//   matmul and attention) and vector_math.h (a vectorizable exp).
#ifndef SINKLAB_LAYERS_CPU_CPU_BACKEND_H_
#define SINKLAB_LAYERS_CPU_CPU_BACKEND_H_

#include "layers/backend.h"

namespace sinklab {

class CpuBackend : public Backend {
 public:
  Device device() const override { return Device::kCpu; }
  DType activation_dtype() const override { return DType::kF32; }

  void Fill(const Tensor& x, float value) override;
  void Copy(const Tensor& dst, const Tensor& src) override;
  void Convert(const Tensor& dst, const Tensor& src) override;
  void CopyFromHost(const Tensor& dst, const void* host_src) override;
  void CopyToHost(void* host_dst, const Tensor& src) override;
  void AddInto(const Tensor& dst, const Tensor& src) override;
  double SumToHost(const Tensor& x) override;
  int64_t CountNonNegative(const Tensor& x) override;
  void MeanLoss(const Tensor& out, const Tensor& losses, const Tensor& targets) override;
  double MaxAbsToHost(const Tensor& x) override;

  void MatmulForward(const Tensor& out, const Tensor& inp, const Tensor& weight,
                     const Tensor& residual) override;
  void MatmulBackward(const Tensor& dinp, const Tensor& dweight, const Tensor& dout,
                      const Tensor& inp, const Tensor& weight, GradWrite dinp_write) override;

  void EmbeddingForward(const Tensor& out, const Tensor& tokens, const Tensor& table) override;
  void EmbeddingBackward(const Tensor& dtable, const Tensor& dout, const Tensor& tokens) override;

  void RmsNormForward(const Tensor& out, const Tensor& rstd, const Tensor& inp,
                      const Tensor& weight, float eps) override;
  void RmsNormBackward(const Tensor& dinp, const Tensor& dweight, const Tensor& dout,
                       const Tensor& inp, const Tensor& weight, const Tensor& rstd,
                       GradWrite dinp_write) override;

  void RopeForward(const Tensor& out, const Tensor& inp, const Tensor& cos,
                   const Tensor& sin) override;
  void RopeBackward(const Tensor& dinp, const Tensor& dout, const Tensor& cos, const Tensor& sin,
                    GradWrite dinp_write) override;

  void AttentionForward(const Tensor& out, const Tensor& probs, const Tensor& lse,
                        const Tensor& unclipped_values, const Tensor& q, const Tensor& k,
                        const Tensor& v, const Tensor& sink_logit,
                        const AttentionSpec& spec) override;
  void AttentionBackward(const Tensor& dq, const Tensor& dk, const Tensor& dv,
                         const Tensor& dsink_logit, const Tensor& dout, const Tensor& q,
                         const Tensor& k, const Tensor& v, const Tensor& sink_logit,
                         const Tensor& out, const Tensor& unclipped_values, const Tensor& probs,
                         const Tensor& lse, const AttentionSpec& spec,
                         GradWrite dqkv_write) override;
  void AttentionRowStats(const Tensor& row_stats, const Tensor& probs, const Tensor& q,
                         const Tensor& k, const Tensor& lse, const Tensor& sink_logit,
                         const AttentionSpec& spec, int64_t prefix_tokens) override;

  void PrependRows(const Tensor& out, const Tensor& prefix, const Tensor& inp) override;
  void PrependRowsBackward(const Tensor& dprefix, const Tensor& dinp, const Tensor& dout) override;

  void SigmoidGateForward(const Tensor& out, const Tensor& gate, const Tensor& y,
                          const Tensor& logits) override;
  void SigmoidGateBackward(const Tensor& dy, const Tensor& dlogits, const Tensor& dout,
                           const Tensor& y, const Tensor& gate, GradWrite write) override;

  void SwigluForward(const Tensor& out, const Tensor& gate, const Tensor& up) override;
  void SwigluBackward(const Tensor& dgate, const Tensor& dup, const Tensor& dout,
                      const Tensor& gate, const Tensor& up) override;

  void CrossEntropyForward(const Tensor& losses, const Tensor& lse, const Tensor& logits,
                           const Tensor& targets) override;
  void CrossEntropyBackward(const Tensor& dlogits, const Tensor& logits, const Tensor& lse,
                            const Tensor& targets, float dloss) override;
};

// Shape checks shared by the CPU kernels (programmer errors: SL_CHECK with the shapes).
void CheckSameShape(const Tensor& a, const Tensor& b, const char* what);
void CheckCpuF32(const Tensor& x, const char* what);

}  // namespace sinklab

#endif  // SINKLAB_LAYERS_CPU_CPU_BACKEND_H_

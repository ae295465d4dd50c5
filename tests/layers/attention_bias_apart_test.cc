// The attention layer's KV bias with the bias key apart (Backend::AttentionForwardBiasApart,
// the path CudaBackend takes through cuDNN): with a CPU backend that takes the path (doing
// what CudaBackend's fallback does: its own prepended copies and the reference attention),
// a model's loss and parameter gradients (of a second step) are bit-identical to those of the
// prepended path, the layer passing k, v and the bias parameters apart in training steps;
// statistics steps (captured weights) keep the prepended path; and a backend that declines
// it is called for the forward only.
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "layers/cpu/cpu_backend.h"
#include "layers/model.h"
#include "tests/layers/gradient_check.h"

namespace sinklab {
namespace {

class ApartCpuBackend : public CpuBackend {
 public:
  explicit ApartCpuBackend(bool take_path) : take_path_(take_path) {}
  int forwards = 0, backwards = 0;

  bool AttentionForwardBiasApart(const Tensor& out, const Tensor& lse, const Tensor& q,
                                 const Tensor& k, const Tensor& v, const Tensor& k_bias,
                                 const Tensor& v_bias, const Tensor& sink_logit,
                                 const AttentionSpec& spec) override {
    ++forwards;
    if (!take_path_) return false;
    Layer& layer = layers_[lse.data()];  // one per attention layer
    const Tensor k_all = Prepended(layer.k_all, k), v_all = Prepended(layer.v_all, v);
    PrependRows(k_all, k_bias, k);
    PrependRows(v_all, v_bias, v);
    const Tensor probs = Sized(layer.probs, {q.dim(0), q.dim(2), q.dim(1), k.dim(1) + 1});
    AttentionForward(out, probs, lse, Tensor(), q, k_all, v_all, sink_logit, spec);
    return true;
  }

  void AttentionBackwardBiasApart(const Tensor& dq, const Tensor& dk, const Tensor& dv,
                                  const Tensor& dk_bias, const Tensor& dv_bias,
                                  const Tensor& dsink_logit, const Tensor& dout, const Tensor& q,
                                  const Tensor& k, const Tensor& v, const Tensor& /*k_bias*/,
                                  const Tensor& /*v_bias*/, const Tensor& sink_logit,
                                  const Tensor& out, const Tensor& lse,
                                  const AttentionSpec& spec) override {
    ++backwards;
    Layer& layer = layers_.at(lse.data());
    const Tensor k_all = Prepended(layer.k_all, k), v_all = Prepended(layer.v_all, v);
    const Tensor dk_all = Prepended(layer.dk_all, k), dv_all = Prepended(layer.dv_all, v);
    const Tensor probs = Sized(layer.probs, {q.dim(0), q.dim(2), q.dim(1), k.dim(1) + 1});
    AttentionBackward(dq, dk_all, dv_all, dsink_logit, dout, q, k_all, v_all, sink_logit, out,
                      Tensor(), probs, lse, spec, GradWrite::kAssign);
    Fill(dk, 0.0f);
    Fill(dv, 0.0f);
    PrependRowsBackward(dk_bias, dk, dk_all);
    PrependRowsBackward(dv_bias, dv, dv_all);
  }

 private:
  struct Layer {
    std::vector<float> k_all, v_all, dk_all, dv_all, probs;
  };
  // f32 [dims] in `storage` (resized; the forward's values stay for the backward).
  static Tensor Sized(std::vector<float>& storage, std::initializer_list<int64_t> dims) {
    int64_t n = 1;
    for (const int64_t d : dims) n *= d;
    if (static_cast<int64_t>(storage.size()) != n) storage.assign(n, 0.0f);
    return Tensor(storage.data(), DType::kF32, Device::kCpu, dims);
  }
  // [B, S + 1, Hkv, d] for x [B, S, Hkv, d].
  static Tensor Prepended(std::vector<float>& storage, const Tensor& x) {
    return Sized(storage, {x.dim(0), x.dim(1) + 1, x.dim(2), x.dim(3)});
  }

  bool take_path_;
  std::map<const void*, Layer> layers_;
};

struct Result {
  float loss = 0;
  std::vector<std::vector<float>> grads;
};

Result RunStep(const ModelConfig& config, Backend* backend, bool capture) {
  constexpr int B = 2, T = 6;
  Arena arena(Device::kCpu, size_t{1} << 20);
  TensorPool pool;
  Model model(config, B, T, backend, &arena);
  model.InitParameters(/*seed=*/5);
  std::vector<int32_t> targets = RandomTokens(B * T, 11, 2);
  targets[4] = -1;
  const Tensor tokens_t = pool.Ints({B, T}, RandomTokens(B * T, 11, 1));
  const Tensor targets_t = pool.Ints({B, T}, targets);
  model.set_capture_attention(capture);
  Result result;
  // Two steps, so that a scratch buffer left unzeroed by the first would show in the second.
  for (int step = 0; step < 2; ++step) {
    for (Parameter* p : model.parameters()) std::memset(p->grad.data(), 0, p->grad.nbytes());
    result.loss = model.Forward(tokens_t, targets_t);
    model.Backward(1.0f);
  }
  for (const Parameter* p : model.parameters()) {
    result.grads.emplace_back(p->grad.f32(), p->grad.f32() + p->grad.numel());
  }
  return result;
}

ModelConfig KvBiasConfig(AttentionNormalizer normalizer, bool value_gate) {
  ModelConfig config = TinyTestModelConfig();
  config.set_init_std(0.4f);
  AttentionConfig* attention = config.mutable_attention();
  attention->set_kv_bias(true);
  if (normalizer == AttentionNormalizer::kSinkLogit) {
    attention->set_normalizer(AttentionConfig::SINK_LOGIT);
  }
  if (value_gate) {
    attention->mutable_gate()->set_position(GateConfig::VALUE);
    attention->mutable_gate()->set_granularity(GateConfig::HEADWISE);
  }
  return config;
}

TEST(AttentionBiasApartTest, TrainingStepsMatchThePrependedPathBitForBit) {
  for (const bool value_gate : {false, true}) {
    for (const AttentionNormalizer n :
         {AttentionNormalizer::kSoftmax, AttentionNormalizer::kSinkLogit}) {
      SCOPED_TRACE(std::string(n == AttentionNormalizer::kSoftmax ? "softmax" : "sink logit") +
                   (value_gate ? " + value gate" : ""));
      const ModelConfig config = KvBiasConfig(n, value_gate);
      CpuBackend plain;
      ApartCpuBackend apart(/*take_path=*/true);
      const Result want = RunStep(config, &plain, /*capture=*/false);
      const Result got = RunStep(config, &apart, /*capture=*/false);
      EXPECT_EQ(apart.forwards, 2 * config.n_layers());
      EXPECT_EQ(apart.backwards, 2 * config.n_layers());
      EXPECT_EQ(got.loss, want.loss);
      ASSERT_EQ(got.grads.size(), want.grads.size());
      for (size_t i = 0; i < want.grads.size(); ++i) {
        EXPECT_EQ(got.grads[i], want.grads[i]) << "parameter " << i;
      }
    }
  }
}

TEST(AttentionBiasApartTest, StatisticsStepsKeepThePrependedRows) {
  const ModelConfig config = KvBiasConfig(AttentionNormalizer::kSoftmax, false);
  CpuBackend plain;
  ApartCpuBackend apart(/*take_path=*/true);
  const Result want = RunStep(config, &plain, /*capture=*/true);
  const Result got = RunStep(config, &apart, /*capture=*/true);
  EXPECT_EQ(apart.forwards, 0);  // never asked: the weights cover all K keys
  EXPECT_EQ(apart.backwards, 0);
  EXPECT_EQ(got.loss, want.loss);
  EXPECT_EQ(got.grads, want.grads);
}

TEST(AttentionBiasApartTest, ADecliningBackendGetsThePrependedBackward) {
  const ModelConfig config = KvBiasConfig(AttentionNormalizer::kSoftmax, true);
  CpuBackend plain;
  ApartCpuBackend declining(/*take_path=*/false);
  const Result want = RunStep(config, &plain, /*capture=*/false);
  const Result got = RunStep(config, &declining, /*capture=*/false);
  EXPECT_EQ(declining.forwards, 2 * config.n_layers());
  EXPECT_EQ(declining.backwards, 0);
  EXPECT_EQ(got.loss, want.loss);
  EXPECT_EQ(got.grads, want.grads);
}

}  // namespace
}  // namespace sinklab

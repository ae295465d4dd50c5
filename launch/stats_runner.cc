#include "launch/stats_runner.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "configs/config_util.h"
#include "core/dtype.h"
#include "core/log.h"
#include "core/median.h"

namespace sinklab {
namespace {

// Elements per moment chunk (fixed, so kurtosis does not depend on the thread count).
constexpr int64_t kMomentChunk = int64_t{1} << 18;

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

bool HasVirtualMass(const ModelConfig& config) {
  const AttentionConfig::Normalizer n = config.attention().normalizer();
  return n == AttentionConfig::SOFTMAX1 || n == AttentionConfig::SINK_LOGIT;
}

// The first `rows` samples of a tensor whose dim 0 is `batch` samples, or whose elements are
// `batch` equal per-sample blocks (e.g. [B * S, F] linear inputs): flattened to [rows, n / B].
Tensor FirstSamples(const Tensor& t, int64_t batch, int64_t rows) {
  SL_CHECK_MSG(t.numel() % batch == 0, absl::StrCat(t.ShapeString(), " vs batch ", batch));
  return t.Reshaped({batch, t.numel() / batch}).Slice0(0, rows);
}

double Mean(const std::vector<double>& values) {
  double sum = 0;
  for (const double v : values) sum += v;
  return values.empty() ? NAN : sum / static_cast<double>(values.size());
}

double MeanOf(const LayerHeadArray& array) {
  std::vector<double> flat;
  for (const auto& row : array) flat.insert(flat.end(), row.begin(), row.end());
  return Mean(flat);
}

double MaxOf(const std::vector<double>& values) {
  double max = -INFINITY;
  for (const double v : values) max = std::max(max, v);  // NaN entries are skipped
  return values.empty() ? NAN : max;
}

LayerHeadArray Zeros(int64_t layers, int64_t heads) {
  return LayerHeadArray(layers, std::vector<double>(heads, 0.0));
}

// Adds per_sample [rows * width] (index b * width + i), summed over b, into row[i].
void AddOverSamples(const std::vector<double>& per_sample, std::vector<double>& row) {
  const size_t width = row.size();
  for (size_t i = 0; i < per_sample.size(); ++i) row[i % width] += per_sample[i];
}

}  // namespace

// Sums over samples of every per-sample statistic; divided by the sample count at the end.
struct StatsRunner::Sums {
  std::vector<LayerHeadArray> sink_count;  // [eps][l][h] samples with alpha_0 > eps
  LayerHeadArray first_token, prefix, virtual_mass, bias, entropy, value_norm;
  std::vector<double> token0_norm, gate;
  std::vector<MomentAccumulator> moments;
  int64_t filled = 0;  // entries of abs_values_[l] written
};

StatsRunner::StatsRunner(const StatsConfig& stats, const Model& model, Backend* backend,
                         Arena* arena)
    : stats_(stats),
      model_config_(model.config()),
      backend_(backend),
      batch_(model.batch()),
      seq_len_(model.seq_len()),
      layers_(model.config().n_layers()),
      heads_(model.config().n_heads()),
      kv_heads_(KvHeads(model.config())),
      model_batches_((stats.batch_size() + batch_ - 1) / batch_),
      eps_(SinkEpsList(stats)) {
  SL_CHECK_MSG(stats.batch_size() >= 1, absl::StrCat("stats.batch_size ", stats.batch_size()));
  inputs_ = arena->Allocate(DType::kI32, {batch_, seq_len_});
  targets_ = arena->Allocate(DType::kI32, {batch_, seq_len_});
  host_inputs_.resize(batch_ * seq_len_);
  host_targets_.resize(batch_ * seq_len_);
  const int64_t positions = model_config_.prefix_tokens() + seq_len_;
  const int64_t d_model = model_config_.d_model();
  // Exact medians need every |h^l| of the stats batch: samples x S x D floats per layer.
  abs_values_.assign(layers_, std::vector<float>(stats.batch_size() * positions * d_model));
  if (backend->device() != Device::kCpu || backend->activation_dtype() != DType::kF32) {
    // The largest tensor copied to the host: row_stats [B, H, S, R], or a [B, S, <= D]
    // activation (h, v, gates; linear inputs are reduced on the device).
    const int64_t most = std::max(batch_ * heads_ * positions * kAttentionRowStatFields,
                                  batch_ * positions * d_model);
    staging_f32_.resize(most);
    staging_bf16_.resize(most);
  }
}

Tensor StatsRunner::HostF32(const Tensor& t) {
  if (t.device() == Device::kCpu && t.dtype() == DType::kF32) return t;
  const auto start = std::chrono::steady_clock::now();
  SL_CHECK_MSG(static_cast<size_t>(t.numel()) <= staging_f32_.size(),
               absl::StrCat("captured tensor ", t.ShapeString(), " exceeds the staging buffer"));
  if (t.dtype() == DType::kBF16) {
    backend_->CopyToHost(staging_bf16_.data(), t);
    const int64_t n = t.numel();
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; ++i) staging_f32_[i] = BF16ToFloat(BF16{staging_bf16_[i]});
  } else {
    SL_CHECK_MSG(t.dtype() == DType::kF32, "captured tensors are f32 or bf16");
    backend_->CopyToHost(staging_f32_.data(), t);
  }
  int64_t shape[Tensor::kMaxRank];
  for (int i = 0; i < t.rank(); ++i) shape[i] = t.dim(i);
  copy_seconds_ += SecondsSince(start);
  return Tensor(staging_f32_.data(), DType::kF32, Device::kCpu, shape, t.rank());
}

void StatsRunner::AddBatch(const ModelCapture& capture, int64_t rows, int64_t sample_offset,
                           Sums& sums, StatsReport& report) {
  const AttentionLayout layout{capture.prefix_tokens, capture.bias_keys};
  const int64_t positions = capture.prefix_tokens + seq_len_;
  SL_CHECK_MSG(static_cast<int64_t>(capture.layers.size()) == layers_,
               absl::StrCat("capture has ", capture.layers.size(), " layers, expected ", layers_));
  for (int64_t l = 0; l < layers_; ++l) {
    const LayerCapture& layer = capture.layers[l];
    // Attention: per-(sample, head) values from the row statistics, summed over samples.
    const Tensor row_stats = HostF32(layer.attention.row_stats.Slice0(0, rows));
    SL_CHECK_MSG(row_stats.rank() == 4 && row_stats.dim(1) == heads_ &&
                     row_stats.dim(2) == positions &&
                     row_stats.dim(3) == kAttentionRowStatFields,
                 absl::StrCat("layer ", l, " row_stats ", row_stats.ShapeString()));
    const std::vector<double> window_alpha =
        FirstKeyMassFromRowStats(row_stats, layout, stats_.window());
    for (size_t e = 0; e < eps_.size(); ++e) {
      std::vector<double> indicator(window_alpha.size());
      for (size_t i = 0; i < window_alpha.size(); ++i) {
        indicator[i] = window_alpha[i] > eps_[e] ? 1.0 : 0.0;  // per sample (Gu et al. 2025)
      }
      AddOverSamples(indicator, sums.sink_count[e][l]);
    }
    AddOverSamples(FirstTokenMassFromRowStats(row_stats, layout), sums.first_token[l]);
    AddOverSamples(AttentionEntropyFromRowStats(row_stats, layout), sums.entropy[l]);
    if (layout.prefix_tokens > 0) {
      AddOverSamples(PrefixMassFromRowStats(row_stats, layout), sums.prefix[l]);
    }
    if (layout.bias_keys > 0) {
      AddOverSamples(BiasKeyMassFromRowStats(row_stats, layout), sums.bias[l]);
    }
    if (HasVirtualMass(model_config_)) {
      AddOverSamples(VirtualMassFromRowStats(row_stats, layout), sums.virtual_mass[l]);
    }
    // Values per kv head (data tokens only).
    const Tensor v = HostF32(layer.attention.v.Slice0(0, rows));
    AddOverSamples(TokenZeroNormRatio(v, layout.prefix_tokens), sums.value_norm[l]);
    if (!layer.attention.gate.empty()) {
      const Tensor gate = HostF32(layer.attention.gate.Slice0(0, rows));
      for (const double g : GateMean(gate, layout.prefix_tokens)) sums.gate[l] += g;
    }
    // Residual stream h^l: every position, prefix tokens included.
    const Tensor h = HostF32(layer.output.Slice0(0, rows));
    for (const double r : TokenZeroNormRatio(h, layout.prefix_tokens)) sums.token0_norm[l] += r;
    sums.moments[l].AddInChunks(h.f32(), h.numel(), kMomentChunk);
    // Top-3 |h| per sample in parallel, merged in sample order (earlier elements win ties,
    // as one pass over h would give).
    std::vector<std::vector<ActivationSite>> sample_top(rows);
#pragma omp parallel for schedule(static)
    for (int64_t b = 0; b < rows; ++b) {
      sample_top[b] = TopAbsActivations(h.Slice0(b, b + 1), 3, sample_offset + b);
    }
    for (const std::vector<ActivationSite>& top : sample_top) {
      MergeTopAbs(&report.top3[l], top, 3);
    }
    float* abs_out = abs_values_[l].data() + sums.filled;
    const float* h_values = h.f32();
    const int64_t h_count = h.numel();
#pragma omp parallel for schedule(static) if (h_count > 65536)
    for (int64_t i = 0; i < h_count; ++i) abs_out[i] = std::fabs(h_values[i]);
    // Linear-layer inputs, reduced where they live (a shared input is measured once).
    std::vector<std::pair<const void*, double>> measured;
    for (const NamedTensor& input : layer.linear_inputs) {
      double max_abs = -1;
      for (const auto& [data, value] : measured) {
        if (data == input.tensor.data()) max_abs = value;
      }
      if (max_abs < 0) {
        const auto start = std::chrono::steady_clock::now();
        max_abs = backend_->MaxAbsToHost(FirstSamples(input.tensor, batch_, rows));
        device_reduce_seconds_ += SecondsSince(start);
        measured.emplace_back(input.tensor.data(), max_abs);
      }
      AddLinearInputMax(input.name, max_abs, report);
    }
  }
  AddLinearInputMax(capture.head_input.name,
                    backend_->MaxAbsToHost(FirstSamples(capture.head_input.tensor, batch_, rows)),
                    report);
  sums.filled += rows * positions * model_config_.d_model();
}

void StatsRunner::AddLinearInputMax(const std::string& name, double max_abs,
                                    StatsReport& report) {
  for (auto& [known, value] : report.linear_input_max) {
    if (known == name) {
      value = std::max(value, max_abs);
      return;
    }
  }
  report.linear_input_max.emplace_back(name, max_abs);
}

absl::StatusOr<StatsReport> StatsRunner::Compute(Model& model, const Loader& val) {
  SL_CHECK_MSG(model.batch() == batch_ && model.seq_len() == seq_len_ &&
                   val.seq_len() == seq_len_,
               absl::StrCat("StatsRunner built for [", batch_, ", ", seq_len_, "], model [",
                            model.batch(), ", ", model.seq_len(), "], loader seq_len ",
                            val.seq_len()));
  if (stats_.window() < 1 || stats_.window() > seq_len_) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "stats.window=%d must be in [1, data.seq_len=%d]: Sink^eps truncates each held-out "
        "sequence to its first stats.window tokens",
        stats_.window(), seq_len_));
  }
  const int64_t samples = stats_.batch_size();
  const int64_t positions = model_config_.prefix_tokens() + seq_len_;
  StatsReport report;
  report.samples = samples;
  report.window = stats_.window();
  report.seq_len = seq_len_;
  report.eps = eps_;
  report.top3.assign(layers_, {});
  Sums sums;
  sums.sink_count.assign(eps_.size(), Zeros(layers_, heads_));
  for (LayerHeadArray* a : {&sums.first_token, &sums.prefix, &sums.virtual_mass, &sums.bias,
                            &sums.entropy}) {
    *a = Zeros(layers_, heads_);
  }
  sums.value_norm = Zeros(layers_, kv_heads_);
  sums.token0_norm.assign(layers_, 0.0);
  sums.gate.assign(layers_, 0.0);
  sums.moments.assign(layers_, MomentAccumulator());
  bool has_gate = false;
  copy_seconds_ = device_reduce_seconds_ = 0;
  double forward_seconds = 0, batch_seconds = 0;
  const auto start = std::chrono::steady_clock::now();
  for (int64_t batch = 0; batch < model_batches_; ++batch) {
    const auto forward_start = std::chrono::steady_clock::now();
    val.GetEvalBatch(batch, batch_, host_inputs_.data(), host_targets_.data());
    backend_->CopyFromHost(inputs_, host_inputs_.data());
    backend_->CopyFromHost(targets_, host_targets_.data());
    model.set_capture_attention(true);
    model.Forward(inputs_, targets_);
    model.set_capture_attention(false);
    forward_seconds += SecondsSince(forward_start);
    const ModelCapture capture = model.Capture();
    SL_CHECK_MSG(capture.prefix_tokens == model_config_.prefix_tokens() &&
                     capture.bias_keys == (model_config_.attention().kv_bias() ? 1 : 0),
                 absl::StrCat("capture layout P=", capture.prefix_tokens,
                              " bias_keys=", capture.bias_keys, " does not match the config"));
    report.prefix_tokens = capture.prefix_tokens;
    report.bias_keys = capture.bias_keys;
    has_gate = !capture.layers.empty() && !capture.layers[0].attention.gate.empty();
    const int64_t rows = std::min(batch_, samples - batch * batch_);
    const auto batch_start = std::chrono::steady_clock::now();
    AddBatch(capture, rows, batch * batch_, sums, report);
    batch_seconds += SecondsSince(batch_start);
  }
  SL_CHECK(sums.filled == samples * positions * model_config_.d_model());
  const auto finish_start = std::chrono::steady_clock::now();
  Finish(sums, has_gate, report);
  LogInfo(absl::StrFormat(
      "statistics of %d samples in %.3f s: forward %.3f s, copies to the host %.3f s, device "
      "reductions %.3f s, host reductions %.3f s, medians and summaries %.3f s",
      samples, SecondsSince(start), forward_seconds, copy_seconds_, device_reduce_seconds_,
      batch_seconds - copy_seconds_ - device_reduce_seconds_, SecondsSince(finish_start)));
  return report;
}

void StatsRunner::Finish(const Sums& sums, bool has_gate, StatsReport& report) {
  const double n = static_cast<double>(report.samples);
  auto averaged = [n](LayerHeadArray a) {
    for (auto& row : a) {
      for (double& v : row) v /= n;
    }
    return a;
  };
  for (size_t e = 0; e < eps_.size(); ++e) {
    report.sink_ratio.push_back(averaged(sums.sink_count[e]));
    // Mean over (sample, layer, head) of the indicator = mean over (l, h) of the fractions.
    report.sink.push_back(MeanOf(report.sink_ratio.back()));
  }
  report.first_token_mass = averaged(sums.first_token);
  report.entropy = averaged(sums.entropy);
  report.value_norm_ratio = averaged(sums.value_norm);
  if (report.prefix_tokens > 0) report.prefix_mass = averaged(sums.prefix);
  if (report.bias_keys > 0) report.bias_mass = averaged(sums.bias);
  if (HasVirtualMass(model_config_)) report.virtual_mass = averaged(sums.virtual_mass);
  // The medians (a selection over samples x S x D values each): layers in parallel.
  std::vector<double> medians(layers_);
#pragma omp parallel for schedule(dynamic)
  for (int64_t l = 0; l < layers_; ++l) {
    medians[l] = Median(abs_values_[l].data(), static_cast<int64_t>(abs_values_[l].size()));
  }
  for (int64_t l = 0; l < layers_; ++l) {
    report.median_abs.push_back(medians[l]);
    const double top1 = report.top3[l].empty() ? 0.0 : std::fabs(report.top3[l][0].value);
    report.top1_ratio.push_back(top1 / report.median_abs.back());
    report.kurtosis.push_back(sums.moments[l].ExcessKurtosis());
    report.token0_norm_ratio.push_back(sums.token0_norm[l] / n);
    if (has_gate) report.gate_mean.push_back(sums.gate[l] / n);
  }
  report.first_token_mass_mean = MeanOf(report.first_token_mass);
  report.prefix_mass_mean = MeanOf(report.prefix_mass);
  report.virtual_mass_mean = MeanOf(report.virtual_mass);
  report.bias_mass_mean = MeanOf(report.bias_mass);
  report.mean_entropy = MeanOf(report.entropy);
  report.max_top1_ratio = MaxOf(report.top1_ratio);
  report.max_kurtosis = MaxOf(report.kurtosis);
  report.token0_norm_ratio_max = MaxOf(report.token0_norm_ratio);
  report.gate_mean_mean = Mean(report.gate_mean);
  report.max_linear_input_abs = 0;
  for (const auto& [name, value] : report.linear_input_max) {
    report.max_linear_input_abs = std::max(report.max_linear_input_abs, value);
  }
}

}  // namespace sinklab

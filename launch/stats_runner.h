// StatsRunner: the sink and outlier statistics of DESIGN.md section 6 on a fixed held-out
// batch, the first stats.batch_size val sequences (Loader::GetEvalBatch batches 0, 1, ... of
// the model's micro-batch size, in order). Built once before the trainer seals its arena;
// Compute runs ceil(stats.batch_size / micro_batch) forward passes and aggregates
// layers/statistics.h over them. The last batch's rows beyond stats.batch_size are computed
// (the model's batch is fixed) but excluded, so the statistics do not depend on the
// micro-batch size.
//
// Which positions count: attention statistics use the data-token queries (prefix tokens
// excluded), the norm ratios and the gate mean the data tokens; the residual-stream
// outlier statistics (top-3, median, kurtosis) and the linear-input maxima cover every
// position, prefix tokens included (a prefix sink token may carry the massive activation).
// Exact medians keep |h^l| of the whole stats batch on the host: stats.batch_size x S x D
// floats per layer (12 x 8 x 1024 x 768 x 4 bytes = 302 MB for llama_160m), allocated at
// construction. Cost per Compute: the forward passes (each also reducing the attention
// weights to row statistics [B, H, S, R] on the backend, no [S, K] matrix on the GPU) plus
// host passes over the small row statistics and the captured activations.
#ifndef SINKLAB_LAUNCH_STATS_RUNNER_H_
#define SINKLAB_LAUNCH_STATS_RUNNER_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "configs/sinklab.pb.h"
#include "core/arena.h"
#include "core/tensor.h"
#include "data/loader.h"
#include "layers/backend.h"
#include "layers/model.h"
#include "layers/statistics.h"

namespace sinklab {

using LayerHeadArray = std::vector<std::vector<double>>;  // [layer][head]

// Everything one stats step measures. Per-(layer, head) values are means over samples;
// per-layer values are over all samples' elements unless said otherwise.
struct StatsReport {
  // What was measured.
  int64_t samples = 0;        // held-out sequences (stats.batch_size)
  int64_t window = 0;         // T_w of Sink^eps
  int64_t seq_len = 0;        // T data tokens per sequence
  int64_t prefix_tokens = 0;  // P
  int64_t bias_keys = 0;      // 0 or 1
  std::vector<float> eps;     // SinkEpsList(stats)

  // Attention, [layer][head] (empty arrays where a statistic does not apply).
  std::vector<double> sink;             // [eps]: Sink^eps (Gu et al. 2025), in [0, 1]
  std::vector<LayerHeadArray> sink_ratio;  // [eps][l][h]: fraction of samples alpha_0 > eps
  LayerHeadArray first_token_mass;      // alpha_0 at full length
  LayerHeadArray prefix_mass;           // with prefix tokens
  LayerHeadArray virtual_mass;          // SOFTMAX1 / SINK_LOGIT
  LayerHeadArray bias_mass;             // kv_bias
  LayerHeadArray entropy;               // nats, mean over queries
  // Residual stream h^l and activations, [layer] (value_norm_ratio [layer][kv head]).
  std::vector<std::vector<ActivationSite>> top3;  // sample = index in the stats batch
  std::vector<double> median_abs;
  std::vector<double> top1_ratio;                 // |top3[0]| / median_abs
  std::vector<double> kurtosis;                   // excess kurtosis of h^l
  std::vector<double> token0_norm_ratio;          // mean over samples
  LayerHeadArray value_norm_ratio;                // mean over samples
  std::vector<double> gate_mean;                  // empty without a gate
  std::vector<std::pair<std::string, double>> linear_input_max;  // {parameter name, max |x|}

  // Scalars for metrics.jsonl (see StatsScalars in launch/stats_writer.h).
  double first_token_mass_mean = 0;  // mean over (l, h)
  double prefix_mass_mean = 0, virtual_mass_mean = 0, bias_mass_mean = 0;  // when they apply
  double max_top1_ratio = 0;
  double max_kurtosis = 0;
  double max_linear_input_abs = 0;
  double mean_entropy = 0;
  double token0_norm_ratio_max = 0;
  double gate_mean_mean = 0;  // when a gate exists
};

class StatsRunner {
 public:
  // Sizes every buffer for `model` (its micro-batch, seq_len and config) and `stats`: the
  // token tensors come from `arena` (call before it is sealed), host buffers are owned
  // vectors. `backend` (not owned) is the model's, for host <-> device copies.
  StatsRunner(const StatsConfig& stats, const Model& model, Backend* backend, Arena* arena);

  // Runs the forward passes on `val` (whose seq_len must be the model's) and aggregates.
  // Leaves the model's activations of the last pass in place; does not touch gradients.
  // InvalidArgument when stats.window exceeds data.seq_len.
  absl::StatusOr<StatsReport> Compute(Model& model, const Loader& val);

  // Forward passes per Compute: ceil(stats.batch_size / micro_batch).
  int64_t model_batches() const { return model_batches_; }

 private:
  struct Sums;  // running sums over the batches of one Compute
  // A host f32 view of a captured tensor: the tensor itself on the CPU, else a copy (and
  // bf16 -> f32 conversion) in the staging buffer, valid until the next call.
  Tensor HostF32(const Tensor& t);
  // Adds samples [0, rows) of the last forward (stats-batch samples sample_offset + b).
  void AddBatch(const ModelCapture& capture, int64_t rows, int64_t sample_offset, Sums& sums,
                StatsReport& report);
  static void AddLinearInputMax(const std::string& name, double max_abs, StatsReport& report);
  // Divides the sums by the sample count, takes the medians, fills the scalars.
  void Finish(const Sums& sums, bool has_gate, StatsReport& report);

  StatsConfig stats_;
  ModelConfig model_config_;
  Backend* backend_;
  int64_t batch_, seq_len_, layers_, heads_, kv_heads_;
  int64_t model_batches_;
  std::vector<float> eps_;
  Tensor inputs_, targets_;                     // [batch, seq_len] i32 on the device
  std::vector<int32_t> host_inputs_, host_targets_;
  std::vector<std::vector<float>> abs_values_;  // [layer][samples * S * D] |h^l| for medians
  std::vector<float> staging_f32_;              // non-CPU backends only
  std::vector<uint16_t> staging_bf16_;
  // Wall seconds of the parts of the current Compute (logged at its end): host copies
  // (HostF32, conversion included) and device reductions (MaxAbsToHost).
  double copy_seconds_ = 0, device_reduce_seconds_ = 0;
};

}  // namespace sinklab

#endif  // SINKLAB_LAUNCH_STATS_RUNNER_H_

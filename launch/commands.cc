#include "launch/commands.h"

#include <cmath>
#include <cstdio>
#include <memory>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "configs/config_loader.h"
#include "configs/config_util.h"
#include "core/arena.h"
#include "core/device.h"
#include "core/log.h"
#include "core/safetensors.h"
#include "data/loader.h"
#include "data/prepare.h"
#include "data/token_source.h"
#include "data/vocab_check.h"
#include "launch/backend_factory.h"
#include "launch/batch_io.h"
#include "launch/distributed.h"
#include "launch/evaluate.h"
#include "launch/export.h"
#include "launch/model_io.h"
#include "launch/stats_on_weights.h"
#include "launch/sweep.h"
#include "launch/sweep_runner.h"
#include "launch/trainer.h"

namespace sinklab {
namespace {

// Forward of eval batch 0, then its first sequence's tokens and data-position logits.
absl::Status WriteFirstSequenceLogits(Model& model, const Loader& val, Tensor inputs,
                                      Tensor targets, const std::string& path) {
  LoadEvalBatch(val, 0, inputs, targets);
  model.Forward(inputs, targets);
  const ModelCapture capture = model.Capture();
  const Tensor& logits = capture.logits;  // [B, S, V], S = P + T; f32 or bf16, any device
  const int64_t seq_len = model.seq_len(), vocab = logits.dim(2);
  const int64_t first = capture.prefix_tokens;
  // Sequence 0, data positions: rows [first, first + seq_len) of the first sequence.
  const Tensor rows =
      logits.Reshaped({logits.dim(0) * logits.dim(1), vocab}).Slice0(first, first + seq_len);
  std::vector<char> staging;
  const void* bytes = HostBytes(rows, &staging);
  std::vector<float> host(static_cast<size_t>(seq_len * vocab));
  for (size_t i = 0; i < host.size(); ++i) {
    host[i] = rows.dtype() == DType::kF32 ? static_cast<const float*>(bytes)[i]
                                          : BF16ToFloat(static_cast<const BF16*>(bytes)[i]);
  }
  std::vector<int32_t> tokens(static_cast<size_t>(seq_len));
  CopyTensorToHost(tokens.data(), inputs.Slice0(0, 1));
  return WriteSafetensors(
      path,
      {{"tokens", DType::kI32, {seq_len}, tokens.data(), static_cast<size_t>(seq_len) * 4},
       {"logits", DType::kF32, {seq_len, vocab}, host.data(), host.size() * sizeof(float)}},
      {{"format", "pt"}});
}

absl::Status NoPositional(const std::vector<std::string>& args, const char* verb) {
  if (args.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(verb, ": unexpected argument(s) ", absl::StrJoin(args, " ")));
}

// --device: cpu, cuda (an error without a GPU) or auto (core/device.h).
absl::StatusOr<Device> PickDevice(const std::string& flag) { return ResolveDevice(flag); }

}  // namespace

absl::Status RunTrain(const TrainCommand& command) {
  if (command.args.size() > 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("train: expected at most one config file, got ", command.args.size()));
  }
  if (!command.resume.empty() && !command.args.empty()) {
    return absl::InvalidArgumentError(
        "train: give either a config file or --resume RUN_DIR (which uses RUN_DIR/config.textproto)");
  }
  absl::StatusOr<Config> config =
      !command.resume.empty()
          ? LoadConfig(command.resume + "/config.textproto", command.overrides)
          : command.args.empty() ? LoadEmbeddedTinyConfig(command.overrides)
                                 : LoadConfig(command.args[0], command.overrides);
  if (!config.ok()) return config.status();
  TrainOptions options;
  options.resume_dir = command.resume;
  options.stop_at_step = command.stop_at_step;
  SL_ASSIGN_OR_RETURN(options.device, PickDevice(command.device));
  if (command.comm != nullptr) {
    SL_RETURN_IF_ERROR(UseGpuOfLocalRank(options.device, *command.comm).status());
  }
  options.print_progress = !command.quiet;
  options.comm = command.comm;
  SL_ASSIGN_OR_RETURN(const TrainResult result, Train(*config, options));
  if (!result.step_losses.empty()) {
    LogInfo(absl::StrFormat("final training loss %.4f, held-out loss %.4f (%s)",
                            result.step_losses.back(), result.final_val_loss, result.run_dir));
  }
  return absl::OkStatus();
}

absl::Status RunSweep(const SweepCommand& command) {
  if (command.args.size() != 1) {
    return absl::InvalidArgumentError(
        "sweep: expected one sweep file, e.g. experiments/sweeps/tiny_mitigations.textproto");
  }
  SL_ASSIGN_OR_RETURN(const SweepFile file, LoadSweep(command.args[0]));
  SL_ASSIGN_OR_RETURN(const std::vector<SweepRun> runs, ExpandSweep(file, command.overrides));
  std::unique_ptr<Communicator> single;
  Communicator* world = command.comm;
  if (world == nullptr) {
    single = MakeSingleProcessCommunicator();
    world = single.get();
  }
  TrainOptions options;
  SL_ASSIGN_OR_RETURN(options.device, PickDevice(command.device));
  SL_RETURN_IF_ERROR(UseGpuOfLocalRank(options.device, *world).status());
  options.print_progress = !command.quiet;
  LogInfo(absl::StrFormat("sweep %s: %d runs, %d rank(s) per run", file.path, runs.size(),
                          command.ranks_per_run));
  // Every group's rank 0 logs (its runs' setup and progress); the other ranks stay quiet.
  if (command.ranks_per_run >= 1) SetLogQuiet(world->rank() % command.ranks_per_run != 0);
  SL_ASSIGN_OR_RETURN(const SweepSummary summary,
                      RunSweepRuns(runs, command.ranks_per_run, *world, options));
  SetLogQuiet(world->rank() != 0);
  LogInfo(absl::StrFormat("sweep %s: %d trained, %d resumed, %d already finished", file.path,
                          summary.trained, summary.resumed, summary.skipped));
  return absl::OkStatus();
}

absl::Status RunEval(const EvalCommand& command) {
  SL_RETURN_IF_ERROR(NoPositional(command.args, "eval"));
  if (command.weights.empty()) {
    return absl::InvalidArgumentError("eval: --weights=RUN_DIR/model.safetensors is required");
  }
  SL_ASSIGN_OR_RETURN(const Config config, ReadWeightsConfig(command.weights, command.overrides));
  SL_ASSIGN_OR_RETURN(const Device device, PickDevice(command.device));
  SL_ASSIGN_OR_RETURN(const TokenSplits tokens, LoadTokens(config.data()));
  const int seq_len = config.data().seq_len();
  SL_RETURN_IF_ERROR(CheckTokensFitVocab(tokens, config.model().vocab_size()));
  if (tokens.val.empty()) {
    return absl::InvalidArgumentError(
        "eval: no held-out tokens (set data.val_shards or data.val_fraction > 0 with --set)");
  }
  SL_ASSIGN_OR_RETURN(std::unique_ptr<Backend> backend, MakeBackend(device));
  Arena arena(device);
  const int micro_batch = MicroBatchSize(config.train());
  const Loader val(&tokens.val, seq_len, micro_batch, config.seed(), 0, 1);
  Model model(config.model(), micro_batch, seq_len, backend.get(), &arena);
  Tensor inputs = arena.Allocate(DType::kI32, {micro_batch, seq_len});
  Tensor targets = arena.Allocate(DType::kI32, {micro_batch, seq_len});
  SL_RETURN_IF_ERROR(LoadModelWeights(command.weights, &model));
  const int batches = command.batches > 0 ? command.batches : config.train().eval_batches();
  const float loss = EvaluateLoss(model, val, batches, inputs, targets);
  if (!command.logits_out.empty()) {
    SL_RETURN_IF_ERROR(WriteFirstSequenceLogits(model, val, inputs, targets, command.logits_out));
  }
  std::printf("eval %s: %d batches x %d x %d tokens | loss %.4f nats/token | %.4f bits/token\n",
              command.weights.c_str(), batches, micro_batch, seq_len, loss, loss / std::log(2.0));
  return absl::OkStatus();
}

absl::Status RunStats(const StatsCommand& command) {
  SL_RETURN_IF_ERROR(NoPositional(command.args, "stats"));
  if (command.weights.empty()) {
    return absl::InvalidArgumentError(
        "stats: --weights=RUN_DIR/model.safetensors or --weights=RUN_DIR/ckpt_<step> is required");
  }
  std::vector<std::string> overrides = command.overrides;
  if (!command.data.empty()) {
    overrides.push_back(absl::StrCat("data { val_shards: \"", absl::CEscape(command.data), "\" }"));
  }
  SL_ASSIGN_OR_RETURN(const Device device, PickDevice(command.device));
  std::string out = command.out;
  if (out.empty()) {
    std::string base = command.weights;
    while (!base.empty() && base.back() == '/') base.pop_back();
    out = base + ".stats.jsonl";
  }
  return RunStatsOnWeights(command.weights, overrides, out, device);
}

absl::Status RunExport(const ExportCommand& command) {
  if (command.args.size() != 1) {
    return absl::InvalidArgumentError(
        "export: expected one checkpoint directory, e.g. runs/tiny/ckpt_00000300");
  }
  SL_RETURN_IF_ERROR(ExportCheckpoint(
      ExportOptions{command.args[0], command.format, command.out_dir, command.dtype}));
  LogInfo(absl::StrFormat("exported %s (%s, %s) to %s", command.args[0], command.format,
                          command.dtype, command.out_dir));
  return absl::OkStatus();
}

absl::Status RunPrepare(const PrepareCommand& command) {
  SL_RETURN_IF_ERROR(NoPositional(command.args, "prepare"));
  PrepareOptions options;
  options.inputs = command.inputs;
  options.out_dir = command.out_dir;
  options.prefix = command.prefix;
  options.shard_tokens = command.shard_tokens;
  options.bos_at_doc_start = command.bos;
  options.doc_separator = command.doc_separator;
  options.val_fraction = command.val_fraction;
  return PrepareShards(options).status();
}

}  // namespace sinklab

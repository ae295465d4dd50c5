#include "launch/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "configs/config_util.h"
#include "configs/config_writer.h"
#include "core/arena.h"
#include "core/device.h"
#include "core/file_util.h"
#include "core/log.h"
#include "core/metrics_jsonl.h"
#include "core/tensorboard_writer.h"
#include "data/loader.h"
#include "data/token_source.h"
#include "data/vocab_check.h"
#include "launch/backend_factory.h"
#include "launch/batch_io.h"
#include "launch/distributed.h"
#include "launch/distributed_optimizer.h"
#include "launch/model_io.h"
#include "launch/progress.h"
#include "launch/run_dir.h"
#include "launch/stats_runner.h"
#include "launch/stats_writer.h"
#include "launch/step_scalars.h"
#include "layers/model.h"
#include "optim/clip.h"
#include "optim/param_groups.h"
#include "optim/schedule.h"

namespace sinklab {
namespace {

using Clock = std::chrono::steady_clock;

// Steps whose loss and norm may wait on the device for a log step; the host reads them
// sooner when this many are pending.
constexpr int kMaxUnreadSteps = 256;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Everything one run holds; built once by Setup, used by the loop.
struct Run {
  Config config;
  TrainOptions options;
  std::string run_dir;
  TokenSplits tokens;
  std::unique_ptr<Backend> backend;
  std::unique_ptr<Arena> arena;
  std::unique_ptr<Model> model;
  Communicator* comm = nullptr;                // options.comm or own_comm
  std::unique_ptr<Communicator> own_comm;      // single process when options.comm is null
  bool writer = true;                          // rank 0: run directory, logs, checkpoints
  int micro_batch = 0, accum = 0;              // per rank (config_util.h, world-aware)
  std::unique_ptr<DistributedOptimizer> optimizer;
  std::unique_ptr<Loader> train_loader;
  std::unique_ptr<Loader> val_loader;
  Tensor inputs, targets;  // [micro_batch, seq_len] int32
  std::unique_ptr<StepScalars> scalars;  // losses and norms not yet read by the host
  JsonlWriter metrics;
  std::unique_ptr<TensorBoardWriter> tensorboard;  // when logging.tensorboard
  std::unique_ptr<StatsRunner> stats;              // rank 0, when stats_enabled
  bool stats_enabled = false;                      // stats.every > 0 and held-out data
  StatsWriter stats_writer;
  int64_t start_step = 0;  // steps already done (from a checkpoint)
};

// Data: the token splits and the train/val loaders.
absl::Status LoadData(Run& run) {
  const Config& config = run.config;
  SL_ASSIGN_OR_RETURN(run.tokens, LoadTokens(config.data()));
  SL_RETURN_IF_ERROR(CheckTokensFitVocab(run.tokens, config.model().vocab_size()));
  if (run.tokens.val.empty() && config.train().eval_batches() > 0) {
    return absl::InvalidArgumentError(
        "train.eval_batches > 0 but there are no held-out tokens (set data.val_shards or "
        "data.val_fraction > 0)");
  }
  const int seq_len = config.data().seq_len();
  // Each rank reads its disjoint slice of every global batch (data/loader.h).
  run.train_loader = std::make_unique<Loader>(&run.tokens.train, seq_len,
                                              config.train().batch_size(), config.seed(),
                                              run.comm->rank(), run.comm->world_size());
  if (!run.tokens.val.empty()) {
    // Held-out batches are numbered as on one rank; EvaluateLossAcrossRanks splits them.
    run.val_loader = std::make_unique<Loader>(&run.tokens.val, seq_len, run.micro_batch,
                                              config.seed(), 0, 1);
  }
  run.stats_enabled = config.stats().every() > 0 && run.val_loader != nullptr;
  return absl::OkStatus();
}

// Backend, model, optimizer, batch buffers and the stats runner, all from one arena, which
// is then sealed: the training loop allocates nothing.
absl::Status BuildModel(Run& run) {
  const Config& config = run.config;
  const int seq_len = config.data().seq_len();
  const int micro_batch = run.micro_batch;
  SL_ASSIGN_OR_RETURN(run.backend, MakeBackend(run.options.device));
  run.arena = std::make_unique<Arena>(run.options.device);
  run.model = std::make_unique<Model>(config.model(), micro_batch, seq_len, run.backend.get(),
                                      run.arena.get());
  run.model->InitParameters(config.seed());
  SL_ASSIGN_OR_RETURN(run.optimizer,
                      DistributedOptimizer::Create(config, run.model->parameters(), run.comm,
                                                   run.arena.get()));
  run.inputs = run.arena->Allocate(DType::kI32, {micro_batch, seq_len});
  run.targets = run.arena->Allocate(DType::kI32, {micro_batch, seq_len});
  run.scalars = std::make_unique<StepScalars>(run.arena.get(), kMaxUnreadSteps, run.accum);
  if (run.stats_enabled && run.writer) {
    run.stats = std::make_unique<StatsRunner>(config.stats(), *run.model, run.backend.get(),
                                              run.arena.get());
  }
  run.arena->Seal();
  return absl::OkStatus();
}

// The run directory (new, given, or the one resumed) with the resolved config and the log
// writers; rank 0 makes it and tells the others its path.
absl::Status OpenRunDirectory(Run& run) {
  const Config& config = run.config;
  if (!run.options.resume_dir.empty()) {
    run.run_dir = run.options.resume_dir;
  } else if (!run.options.run_dir.empty()) {
    run.run_dir = run.options.run_dir;
    if (run.writer) SL_RETURN_IF_ERROR(MakeDirs(run.run_dir));
  } else if (run.writer) {
    SL_ASSIGN_OR_RETURN(run.run_dir, CreateRunDir(config.train().run_root(), config.name()));
  }
  run.run_dir = BroadcastString(*run.comm, run.run_dir, 0);
  if (!run.writer) return absl::OkStatus();
  SL_RETURN_IF_ERROR(
      WriteFileAtomically(run.run_dir + "/config.textproto", ConfigToText(config)));
  if (config.logging().jsonl()) {
    SL_RETURN_IF_ERROR(run.metrics.Open(run.run_dir + "/metrics.jsonl"));
  }
  if (config.logging().tensorboard()) {
    SL_ASSIGN_OR_RETURN(run.tensorboard, TensorBoardWriter::Open(run.run_dir));
  }
  if (run.stats != nullptr) SL_RETURN_IF_ERROR(run.stats_writer.Open(run.run_dir));
  return absl::OkStatus();
}

// Everything before the first step; a bad config or data fails before the run directory
// exists.
absl::Status Setup(Run& run) {
  if (run.options.comm == nullptr) run.own_comm = MakeSingleProcessCommunicator();
  run.comm = run.options.comm != nullptr ? run.options.comm : run.own_comm.get();
  run.writer = run.comm->rank() == 0;
  const int world = run.comm->world_size();
  SL_RETURN_IF_ERROR(ValidateForWorldSize(run.config, world));
  run.micro_batch = MicroBatchSize(run.config.train(), world);
  run.accum = GradAccumSteps(run.config.train(), world);
  SL_RETURN_IF_ERROR(LoadData(run));
  SL_RETURN_IF_ERROR(BuildModel(run));
  SL_RETURN_IF_ERROR(OpenRunDirectory(run));
  if (!run.options.resume_dir.empty()) {
    SL_ASSIGN_OR_RETURN(run.start_step,
                        run.optimizer->LoadLatestCheckpoint(run.run_dir, run.model.get()));
    LogInfo(absl::StrFormat("resuming %s at step %d", run.run_dir, run.start_step));
  }
  LogInfo(absl::StrFormat(
      "run directory %s; %d parameters; %d train tokens (%s), %d val tokens (%s)", run.run_dir,
      run.model->NumParameters(), run.tokens.train.size(), run.tokens.train_source,
      run.tokens.val.size(), run.tokens.val_source));
  if (world > 1) {
    LogInfo(absl::StrFormat("%d ranks x micro-batch %d x %d accumulation steps = global batch %d",
                            world, run.micro_batch, run.accum, run.config.train().batch_size()));
  }
  for (const std::string& line : run.optimizer->Describe()) LogInfo(line);
  return absl::OkStatus();
}

// One optimizer step: accumulated micro-batches, clip, schedule, optimizers. The step's
// losses and gradient norm stay on the device in run.scalars (ReadScalars), so nothing here
// waits for the GPU on one process.
absl::Status TrainStep(Run& run, int64_t step) {
  const Config& config = run.config;
  SL_RETURN_IF_ERROR(PlantedFailureForTests(run.comm->rank(), step + 1));
  const int accum = run.accum, world = run.comm->world_size();
  run.scalars->Begin(step + 1);
  ZeroGrads(run.model->parameters());
  for (int micro = 0; micro < accum; ++micro) {
    LoadTrainBatch(*run.train_loader, step, micro, run.inputs, run.targets);
    // This rank's share of the grads of the mean over the whole global batch; the sum
    // over ranks (ReduceAndClipGradients) is the mean. The last micro-batch's backward pass
    // starts those sums as it goes (GPUs).
    run.model->ForwardBackward(run.inputs, run.targets, 1.0f / (accum * world),
                               micro + 1 == accum ? run.optimizer->GradsReadyHook(run.backend.get())
                                                  : Model::GradsReadyFn());
    run.model->WriteMeanLoss(run.scalars->LossSlot(micro));
  }
  run.optimizer->ReduceAndClipGradients(run.scalars->NormSlot());
  run.optimizer->Step(LrMultiplier(config.optim(), step, config.train().steps()), step + 1);
  return absl::OkStatus();
}

// Collective: the losses and norms of the steps since the last read, appended to
// result.step_losses; returns the last step's. A non-finite loss or norm stops the run,
// naming the first such step (the steps after it, up to this read, have run).
absl::StatusOr<StepScalar> ReadScalars(Run& run, TrainResult& result) {
  const std::vector<StepScalar> steps = run.scalars->Read(*run.comm);
  SL_CHECK(!steps.empty());
  for (const StepScalar& s : steps) {
    if (!std::isfinite(s.loss) || !std::isfinite(s.grad_norm)) {
      return absl::InternalError(absl::StrFormat(
          "training diverged at step %d: loss %g, gradient norm %g (try a lower optim.lr)", s.step,
          s.loss, s.grad_norm));
    }
    result.step_losses.push_back(s.loss);
  }
  return steps.back();
}

// SINKLAB_PROFILE_STEP=n (1-based): step n alone runs inside the GPU profiler bracket, for
// `ncu --profile-from-start off` (experiments/perf/run.sh profile). 0 when unset.
int64_t ProfiledStep() {
  const char* env = std::getenv("SINKLAB_PROFILE_STEP");
  return env == nullptr ? 0 : std::atoll(env);
}

// `extra`: statistics scalars of a stats step (sink/outlier statistics, optimizer updates).
absl::Status LogStep(Run& run, int64_t step, float loss, float grad_norm, double interval_tokens,
                     double interval_s, double elapsed_s, double eta_s, float val_loss,
                     const std::vector<std::pair<std::string, double>>& extra) {
  const Config& config = run.config;
  const int64_t total = config.train().steps();
  const float lr = LearningRate(config.optim(), step, total);
  const double tokens_per_s = interval_tokens / std::max(interval_s, 1e-9);
  if (run.options.print_progress) {
    std::string line =
        FormatProgress(ProgressInfo{step, total, loss, lr, grad_norm, tokens_per_s, eta_s});
    if (!std::isnan(val_loss)) absl::StrAppend(&line, absl::StrFormat(" | val %.4f", val_loss));
    std::printf("%s%s\n", run.options.progress_prefix.c_str(), line.c_str());
    std::fflush(stdout);
  }
  std::vector<std::pair<std::string, double>> scalars = {
      {"loss", loss}, {"lr", lr}, {"grad_norm", grad_norm}, {"tokens_per_s", tokens_per_s}};
  if (!std::isnan(val_loss)) scalars.emplace_back("val_loss", val_loss);
  scalars.insert(scalars.end(), extra.begin(), extra.end());
  if (run.tensorboard != nullptr) {
    for (const auto& [tag, value] : scalars) {
      SL_RETURN_IF_ERROR(
          run.tensorboard->AddScalar(tag, step + 1, static_cast<float>(value), WallTimeNow()));
    }
    SL_RETURN_IF_ERROR(run.tensorboard->Flush());
  }
  if (!run.metrics.is_open()) return absl::OkStatus();
  JsonRecord record;
  record.Add("step", step + 1).Add("elapsed_s", elapsed_s);
  for (const auto& [key, value] : scalars) record.Add(key, value);
  return run.metrics.Append(record);
}

}  // namespace

absl::StatusOr<TrainResult> Train(const Config& config, const TrainOptions& options) {
  Run run;
  run.config = config;
  run.options = options;
  SL_RETURN_IF_ERROR(Setup(run));
  run.options.print_progress = options.print_progress && run.writer;

  const TrainConfig& train = config.train();
  const int64_t end_step = options.stop_at_step > 0
                               ? std::min<int64_t>(options.stop_at_step, train.steps())
                               : train.steps();
  const double tokens_per_step =
      static_cast<double>(train.batch_size()) * config.data().seq_len();
  const int ckpt_every = config.checkpoint().every();
  TrainResult result;
  result.run_dir = run.run_dir;
  result.first_step = run.start_step;
  result.final_val_loss = NAN;
  const Clock::time_point start = Clock::now();
  Clock::time_point interval_start = start;
  int64_t interval_steps = 0;
  const int64_t profiled_step = ProfiledStep();
  StepScalar latest;  // the last step the host has read
  for (int64_t step = run.start_step; step < end_step; ++step) {
    const int64_t done = step + 1;
    const bool last = done == train.steps();
    const bool stats_now = run.stats_enabled && (last || done % config.stats().every() == 0);
    run.optimizer->set_record_stats(stats_now);
    if (done == profiled_step) SetGpuProfilerActive(true);
    SL_RETURN_IF_ERROR(TrainStep(run, step));
    if (done == profiled_step) SetGpuProfilerActive(false);
    ++interval_steps;
    const bool eval_now = last || (train.eval_every() > 0 && done % train.eval_every() == 0);
    const bool log_now = last || eval_now || stats_now || done % train.log_every() == 0;
    const bool checkpoint_now = done == end_step || (ckpt_every > 0 && done % ckpt_every == 0);
    // The host reads the step scalars only here (every rank at the same steps).
    if (log_now || checkpoint_now || run.scalars->full()) {
      SL_ASSIGN_OR_RETURN(latest, ReadScalars(run, result));
    }
    float val_loss = NAN;
    if (eval_now && train.eval_batches() > 0) {
      val_loss = EvaluateLossAcrossRanks(*run.model, *run.val_loader, train.eval_batches(),
                                         run.inputs, run.targets, *run.comm);
      result.final_val_loss = val_loss;
    }
    std::vector<std::pair<std::string, double>> stats_scalars;
    if (stats_now) {
      // Collective (every rank); the sink statistics run on rank 0 alone.
      const std::map<std::string, double> update_stats = run.optimizer->LastUpdateStats();
      if (run.writer) {
        SL_ASSIGN_OR_RETURN(const StatsReport stats,
                            run.stats->Compute(*run.model, *run.val_loader));
        SL_RETURN_IF_ERROR(run.stats_writer.Append(done, stats));
        if (run.options.print_progress) {
          std::printf("%sstats @ %d | %s\n", options.progress_prefix.c_str(),
                      static_cast<int>(done), FormatStatsSummary(stats).c_str());
        }
        stats_scalars = StatsScalars(stats);
        for (const auto& [key, value] : update_stats) stats_scalars.emplace_back(key, value);
      }
    }
    if (run.writer && log_now) {
      const double elapsed = SecondsSince(start);
      SL_RETURN_IF_ERROR(LogStep(run, step, latest.loss, latest.grad_norm,
                                 interval_steps * tokens_per_step, SecondsSince(interval_start),
                                 elapsed, elapsed / (done - run.start_step) * (end_step - done),
                                 val_loss, stats_scalars));
      interval_start = Clock::now();
      interval_steps = 0;
    }
    if (checkpoint_now) {
      SL_RETURN_IF_ERROR(run.optimizer->SaveCheckpoint(run.run_dir, done, *run.model, config));
    }
  }
  if (end_step == train.steps() && run.writer) {
    SL_RETURN_IF_ERROR(SaveModelWeights(*run.model, config, run.run_dir + "/model.safetensors"));
  }
  LogInfo(absl::StrFormat("%s at step %d after %s; run directory %s",
                          end_step == train.steps() ? "done" : "stopped", end_step,
                          FormatDuration(SecondsSince(start)), run.run_dir));
  return result;
}

}  // namespace sinklab

// sinklab: the command-line tool. Verbs:
//   sinklab train [CONFIG] [--set FRAGMENT]... [--device cpu|cuda|auto]
//   sinklab eval --weights RUN_DIR/model.safetensors [--set FRAGMENT]... [--batches N]
//   sinklab prepare --input a.txt,b.txt --out DIR [--shard_tokens N] [--bos] ...
//   [mpirun -np N] sinklab sweep SWEEP.textproto [--ranks_per_run K]
// Flags are Abseil flags (`sinklab --help`); only this file defines them. Under mpirun every
// rank runs this main: MPI is initialized first (core/comm.h: only when started by an MPI
// launcher), only rank 0 logs, and an error on any rank ends the whole job with that rank's
// message (Communicator::Abort), so a rank that fails alone never leaves the others waiting.
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "core/comm.h"
#include "core/log.h"
#include "launch/cli_args.h"
#include "launch/commands.h"

ABSL_FLAG(std::string, device, "auto", "Where to run: cpu, cuda or auto (cuda when available).");
ABSL_FLAG(std::string, set, "",
          "Text-proto fragment merged over the config, e.g. --set 'train { steps: 50 }'. "
          "May be repeated; applied in order.");
ABSL_FLAG(bool, quiet, false, "train: no progress lines (log lines still go to stderr).");
ABSL_FLAG(std::string, resume, "",
          "train: continue RUN_DIR from its newest loadable checkpoint (its config.textproto "
          "plus any --set).");
ABSL_FLAG(int64_t, stop_at_step, 0,
          "train: stop after this many steps in total, writing a checkpoint (0: run to the end).");
ABSL_FLAG(std::string, weights, "",
          "eval, stats: a model.safetensors written by train (or by export --format native), or "
          "a checkpoint directory RUN_DIR/ckpt_<step>.");
ABSL_FLAG(std::string, checkpoint, "", "stats: the same as --weights (a ckpt_<step> directory).");
ABSL_FLAG(std::string, data, "", "stats: glob of held-out shards (default: the config's val data).");
ABSL_FLAG(std::string, stats_out, "", "stats: output file (default: <weights>.stats.jsonl).");
ABSL_FLAG(int32_t, batches, 0, "eval: held-out batches to evaluate (0: train.eval_batches).");
ABSL_FLAG(std::string, logits_out, "",
          "eval: also write the first held-out sequence's tokens and logits to this "
          "safetensors file.");
ABSL_FLAG(std::vector<std::string>, input, {}, "prepare: comma-separated text files.");
ABSL_FLAG(std::string, out, "", "prepare, export: output folder.");
ABSL_FLAG(std::string, format, "hf", "export: hf (Hugging Face Llama) or native.");
ABSL_FLAG(std::string, dtype, "bf16", "export: bf16 or f32 tensors.");
ABSL_FLAG(std::string, prefix, "corpus", "prepare: shard file prefix.");
ABSL_FLAG(int64_t, shard_tokens, 100000000, "prepare: maximum tokens per shard.");
ABSL_FLAG(bool, bos, true, "prepare: insert BOS (id 256) at each document start.");
ABSL_FLAG(std::string, doc_separator, "\n\n\n",
          "prepare: separator between documents in a text file (empty: one file = one document).");
ABSL_FLAG(double, val_fraction, 0.05, "prepare: fraction of tokens written to the val shard.");
ABSL_FLAG(int32_t, ranks_per_run, 1,
          "sweep: MPI ranks training each run together (data parallel); must divide the "
          "number of ranks (mpirun -np).");

namespace {

constexpr char kUsage[] = R"(sinklab: pre-train Llama-style Transformers and study attention sinks.

Usage:
  sinklab train [CONFIG.textproto] [--set FRAGMENT]... [--device cpu|cuda|auto] [--quiet]
      Trains CONFIG (default: the embedded configs/tiny.textproto) and writes
      runs/<name>/ (config.textproto, metrics.jsonl, ckpt_<step>/, model.safetensors).
  sinklab train --resume RUN_DIR [--set FRAGMENT]... [--stop_at_step N]
      Continues a run from its newest loadable checkpoint, bit for bit on the CPU.
  sinklab eval --weights RUN_DIR/model.safetensors [--set FRAGMENT]... [--batches N]
      Held-out loss of saved weights, on the data of their config (or --set data {...}).
  sinklab stats --checkpoint RUN_DIR/ckpt_<step> [--data GLOB] [--stats_out FILE] [--set ...]
      Sink and outlier statistics (docs/DESIGN.md section 6) of saved weights.
  sinklab export RUN_DIR/ckpt_<step> --out DIR [--format hf|native] [--dtype bf16|f32]
      Hugging Face Llama folder (model.safetensors + config.json) or our native weights.
  sinklab prepare --input a.txt,b.txt --out DIR [--prefix P] [--shard_tokens N] [--bos]
      Byte-level token shards (llm.c format) from text files.
  sinklab sweep SWEEP.textproto [--ranks_per_run K] [--set FRAGMENT]... [--quiet]
      Trains every run of a sweep (a base config x axes of named overrides) into
      runs/<sweep>/<label>_<label>/; finished runs are skipped when started again.
  mpirun -np N sinklab train|sweep ...
      Data parallel on N ranks (global batch fixed by the config); a sweep splits the N
      ranks into groups of --ranks_per_run, each training one run at a time.

Run `sinklab --help` for every flag.)";

int Fail(const absl::Status& status) {
  std::fprintf(stderr, "sinklab: %s\n", std::string(status.message()).c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  // OpenMP threads that spin while waiting slow a step 3-10x when the cores are shared
  // (other builds, other ranks); passive waiting costs nothing measurable when they are not.
  // Must be set before the first parallel region; a user's own setting wins.
  setenv("OMP_WAIT_POLICY", "PASSIVE", /*overwrite=*/0);
  absl::StatusOr<std::unique_ptr<sinklab::Communicator>> world =
      sinklab::InitWorldCommunicator(&argc, &argv);
  if (!world.ok()) return Fail(world.status());
  sinklab::Communicator* comm = world->get();
  if (comm->rank() != 0) sinklab::SetLogQuiet(true);
  absl::SetProgramUsageMessage(kUsage);
  absl::StatusOr<sinklab::SplitArgs> split = sinklab::ExtractSetOverrides(argc, argv);
  if (!split.ok()) return Fail(split.status());
  std::vector<char*> rest;
  for (std::string& arg : split->rest) rest.push_back(arg.data());
  const std::vector<char*> positional =
      absl::ParseCommandLine(static_cast<int>(rest.size()), rest.data());
  if (positional.size() < 2) {
    std::fprintf(stderr, "%s\n", kUsage);
    return 2;
  }
  const std::string verb = positional[1];
  std::vector<std::string> args(positional.begin() + 2, positional.end());
  absl::Status status;
  if (comm->world_size() > 1 && verb != "train" && verb != "sweep") {
    // Every rank would do the same work and write the same files.
    status = absl::InvalidArgumentError(
        absl::StrCat(verb, " runs in one process: start it without mpirun"));
  } else if (verb == "train") {
    sinklab::TrainCommand command{args,
                                  split->overrides,
                                  absl::GetFlag(FLAGS_device),
                                  absl::GetFlag(FLAGS_quiet),
                                  absl::GetFlag(FLAGS_resume),
                                  absl::GetFlag(FLAGS_stop_at_step),
                                  comm};
    status = sinklab::RunTrain(command);
  } else if (verb == "sweep") {
    status = sinklab::RunSweep(sinklab::SweepCommand{
        args, split->overrides, absl::GetFlag(FLAGS_ranks_per_run), absl::GetFlag(FLAGS_device),
        absl::GetFlag(FLAGS_quiet), comm});
  } else if (verb == "eval") {
    sinklab::EvalCommand command{args,
                                 split->overrides,
                                 absl::GetFlag(FLAGS_weights),
                                 absl::GetFlag(FLAGS_device),
                                 absl::GetFlag(FLAGS_batches),
                                 absl::GetFlag(FLAGS_logits_out)};
    status = sinklab::RunEval(command);
  } else if (verb == "stats") {
    status = sinklab::RunStats(sinklab::StatsCommand{
        args, split->overrides,
        absl::GetFlag(FLAGS_checkpoint).empty() ? absl::GetFlag(FLAGS_weights)
                                                : absl::GetFlag(FLAGS_checkpoint),
        absl::GetFlag(FLAGS_data),
        absl::GetFlag(FLAGS_stats_out), absl::GetFlag(FLAGS_device)});
  } else if (verb == "export") {
    status = sinklab::RunExport(sinklab::ExportCommand{args, absl::GetFlag(FLAGS_format),
                                                       absl::GetFlag(FLAGS_out),
                                                       absl::GetFlag(FLAGS_dtype)});
  } else if (verb == "prepare") {
    sinklab::PrepareCommand command{args,
                                    absl::GetFlag(FLAGS_input),
                                    absl::GetFlag(FLAGS_out),
                                    absl::GetFlag(FLAGS_prefix),
                                    absl::GetFlag(FLAGS_shard_tokens),
                                    absl::GetFlag(FLAGS_bos),
                                    absl::GetFlag(FLAGS_doc_separator),
                                    absl::GetFlag(FLAGS_val_fraction)};
    status = sinklab::RunPrepare(command);
  } else {
    status = absl::InvalidArgumentError(
        absl::StrCat("unknown verb '", verb,
                     "' (expected train, sweep, eval, stats, export or prepare)\n", kUsage));
  }
  if (!status.ok() && comm->world_size() > 1) comm->Abort(std::string(status.message()));
  return status.ok() ? 0 : Fail(status);
}

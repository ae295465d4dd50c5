#include "launch/stats_on_weights.h"

#include <algorithm>
#include <cstdio>
#include <memory>

#include "absl/strings/str_cat.h"
#include "configs/config_util.h"
#include "core/arena.h"
#include "core/file_util.h"
#include "data/loader.h"
#include "data/token_source.h"
#include "data/vocab_check.h"
#include "launch/backend_factory.h"
#include "launch/model_io.h"
#include "launch/stats_runner.h"
#include "launch/stats_writer.h"
#include "layers/model.h"

namespace sinklab {

absl::Status RunStatsOnWeights(const std::string& weights_path,
                               const std::vector<std::string>& overrides,
                               const std::string& out_path, Device device) {
  SL_ASSIGN_OR_RETURN(const Config config, ReadWeightsConfig(weights_path, overrides));
  SL_ASSIGN_OR_RETURN(const TokenSplits tokens, LoadTokens(config.data()));
  SL_RETURN_IF_ERROR(CheckTokensFitVocab(tokens, config.model().vocab_size()));
  if (tokens.val.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "stats of ", weights_path,
        ": no held-out tokens (set data.val_shards or data.val_fraction > 0 with --set)"));
  }
  const int seq_len = config.data().seq_len();
  const int batch = std::min(config.stats().batch_size(), MicroBatchSize(config.train()));
  SL_ASSIGN_OR_RETURN(std::unique_ptr<Backend> backend, MakeBackend(device));
  Arena arena(device);
  Model model(config.model(), batch, seq_len, backend.get(), &arena);
  StatsRunner runner(config.stats(), model, backend.get(), &arena);
  arena.Seal();
  SL_RETURN_IF_ERROR(LoadModelWeights(weights_path, &model));
  const Loader val(&tokens.val, seq_len, batch, config.seed(), 0, 1);
  SL_ASSIGN_OR_RETURN(const StatsReport report, runner.Compute(model, val));
  const size_t slash = out_path.find_last_of('/');
  if (slash != std::string::npos && slash > 0) {
    SL_RETURN_IF_ERROR(MakeDirs(out_path.substr(0, slash)));
  }
  SL_RETURN_IF_ERROR(WriteFileAtomically(out_path, StatsLineJson(-1, report) + "\n"));
  std::printf("stats %s: %lld sequences x %d tokens | %s\n", weights_path.c_str(),
              static_cast<long long>(report.samples), seq_len, FormatStatsSummary(report).c_str());
  std::fflush(stdout);
  return absl::OkStatus();
}

}  // namespace sinklab

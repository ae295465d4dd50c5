// The main job of README (configs/tiny.textproto on the bundled corpus, CPU) learns: its
// held-out loss ends clearly below the unigram entropy of the corpus, the best a model
// without context can do, having started near ln(vocab).
#include <unistd.h>

#include <cmath>
#include <map>

#include "absl/strings/str_cat.h"
#include "configs/config_loader.h"
#include "data/token_source.h"
#include "gtest/gtest.h"
#include "launch/trainer.h"

namespace sinklab {
namespace {

// H = -sum_v p(v) ln p(v) over the token frequencies, in nats.
double UnigramEntropy(const std::vector<uint32_t>& tokens) {
  std::map<uint32_t, int64_t> counts;
  for (uint32_t t : tokens) counts[t]++;
  double entropy = 0;
  for (const auto& [token, count] : counts) {
    const double p = static_cast<double>(count) / tokens.size();
    entropy -= p * std::log(p);
  }
  return entropy;
}

TEST(MainJobTest, TinyPresetEndsClearlyBelowUnigramEntropy) {
  absl::StatusOr<Config> config = LoadConfig(
      "configs/tiny.textproto",
      {absl::StrCat("train { run_root: '", ::testing::TempDir(), "/main_job_", ::getpid(), "' }")});
  ASSERT_TRUE(config.ok()) << config.status();
  const absl::StatusOr<TokenSplits> tokens = LoadTokens(config->data());
  ASSERT_TRUE(tokens.ok()) << tokens.status();
  const double unigram = UnigramEntropy(tokens->train);
  EXPECT_GT(unigram, 2.5);  // bytes of English text: about 3 nats

  TrainOptions options;
  options.print_progress = false;
  const absl::StatusOr<TrainResult> result = Train(*config, options);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_NEAR(result->step_losses.front(), std::log(config->model().vocab_size()), 0.3);
  EXPECT_LT(result->final_val_loss, unigram - 0.5)
      << "unigram entropy " << unigram << " nats, held-out loss " << result->final_val_loss;
}

}  // namespace
}  // namespace sinklab

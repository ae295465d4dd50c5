// Training parity: the tiny model trained 200 steps on the CPU and on the GPU from the same
// seed gives loss curves that agree within bf16 noise, and the statistics of the same
// weights computed on either device agree within tolerance.
#if SINKLAB_WITH_CUDA

#include <unistd.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "configs/config_loader.h"
#include "core/device.h"
#include "core/file_util.h"
#include "core/json_min.h"
#include "gtest/gtest.h"
#include "launch/stats_on_weights.h"
#include "launch/trainer.h"

namespace sinklab {
namespace {

std::string TestRoot(const std::string& tag) {
  return absl::StrCat(::testing::TempDir(), "/cuda_training_test_", ::getpid(), "_", tag);
}

Config TinyConfig(const std::string& run_root, int steps) {
  absl::StatusOr<Config> config = LoadEmbeddedTinyConfig(
      {absl::StrCat("train { steps: ", steps, " run_root: '", run_root, "' }")});
  EXPECT_TRUE(config.ok()) << config.status();
  return *config;
}

double Mean(const std::vector<float>& v, size_t begin, size_t end) {
  double sum = 0;
  for (size_t i = begin; i < end; ++i) sum += v[i];
  return sum / static_cast<double>(end - begin);
}

TEST(CudaTrainingTest, TinyModelLossCurvesAgreeWithTheCpu) {
  if (!CudaAvailable()) GTEST_SKIP() << "no CUDA device visible";
  constexpr int kSteps = 200;
  TrainOptions options;
  options.print_progress = false;
  options.device = Device::kCpu;
  const absl::StatusOr<TrainResult> cpu = Train(TinyConfig(TestRoot("cpu"), kSteps), options);
  options.device = Device::kCuda;
  const absl::StatusOr<TrainResult> gpu = Train(TinyConfig(TestRoot("gpu"), kSteps), options);
  ASSERT_TRUE(cpu.ok()) << cpu.status();
  ASSERT_TRUE(gpu.ok()) << gpu.status();
  ASSERT_EQ(cpu->step_losses.size(), static_cast<size_t>(kSteps));
  ASSERT_EQ(gpu->step_losses.size(), static_cast<size_t>(kSteps));
  // Step 0 sees the same weights: only the forward's bf16 rounding differs.
  EXPECT_NEAR(gpu->step_losses[0], cpu->step_losses[0], 5e-3 * cpu->step_losses[0]);
  // Later steps drift apart chaotically but stay within bf16 noise on average: windows of
  // 20 steps agree within 3%, the final held-out loss within 3%.
  for (size_t begin = 0; begin < kSteps; begin += 20) {
    const double c = Mean(cpu->step_losses, begin, begin + 20);
    const double g = Mean(gpu->step_losses, begin, begin + 20);
    EXPECT_NEAR(g, c, 0.03 * c) << "steps " << begin << "..." << begin + 19;
  }
  EXPECT_NEAR(gpu->final_val_loss, cpu->final_val_loss, 0.03 * cpu->final_val_loss);
  std::printf("final val loss: cpu %.4f gpu %.4f\n", cpu->final_val_loss, gpu->final_val_loss);

  // The statistics of the CPU run's final weights, computed on each device.
  const std::string weights = cpu->run_dir + "/model.safetensors";
  const std::string cpu_stats = TestRoot("stats") + "/cpu.jsonl";
  const std::string gpu_stats = TestRoot("stats") + "/gpu.jsonl";
  ASSERT_TRUE(RunStatsOnWeights(weights, {}, cpu_stats, Device::kCpu).ok());
  ASSERT_TRUE(RunStatsOnWeights(weights, {}, gpu_stats, Device::kCuda).ok());
  absl::StatusOr<std::string> cpu_text = ReadFileToString(cpu_stats);
  absl::StatusOr<std::string> gpu_text = ReadFileToString(gpu_stats);
  ASSERT_TRUE(cpu_text.ok() && gpu_text.ok());
  const absl::StatusOr<JsonValue> c = ParseJson(cpu_text->substr(0, cpu_text->find('\n')));
  const absl::StatusOr<JsonValue> g = ParseJson(gpu_text->substr(0, gpu_text->find('\n')));
  ASSERT_TRUE(c.ok() && g.ok());
  auto member = [](const JsonValue& object, const std::string& key) -> const JsonValue* {
    for (const JsonMember& m : object.members) {
      if (m.key == key) return &m.value;
    }
    return nullptr;
  };
  // Per (layer, head) first-token mass and entropy; per layer kurtosis and top-1 ratio.
  for (const char* key : {"first_token_mass", "entropy", "kurtosis", "median_abs"}) {
    const JsonValue* cv = member(*c, key);
    const JsonValue* gv = member(*g, key);
    ASSERT_TRUE(cv != nullptr && gv != nullptr) << key;
    std::vector<double> cf, gf;
    std::function<void(const JsonValue&, std::vector<double>&)> flatten =
        [&](const JsonValue& v, std::vector<double>& out) {
          if (v.kind == JsonValue::Kind::kNumber) out.push_back(std::stod(v.text));
          for (const JsonValue& item : v.items) flatten(item, out);
        };
    flatten(*cv, cf);
    flatten(*gv, gf);
    ASSERT_EQ(cf.size(), gf.size()) << key;
    ASSERT_FALSE(cf.empty()) << key;
    for (size_t i = 0; i < cf.size(); ++i) {
      EXPECT_NEAR(gf[i], cf[i], 0.03 * std::fabs(cf[i]) + 2e-3) << key << "[" << i << "]";
    }
  }
}

}  // namespace
}  // namespace sinklab

#endif  // SINKLAB_WITH_CUDA

// Checkpoints: exact resume, refusal of damaged files, crash safety, rotation, export.
#include "launch/checkpoint.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "configs/config_loader.h"
#include "core/arena.h"
#include "core/file_util.h"
#include "core/safetensors.h"
#include "gtest/gtest.h"
#include "launch/backend_factory.h"
#include "launch/export.h"
#include "launch/trainer.h"
#include "optim/optimizer_set.h"

namespace sinklab {
namespace {

namespace fs = std::filesystem;

std::string TestRoot(const std::string& tag) {
  return absl::StrCat(::testing::TempDir(), "/checkpoint_test_", ::getpid(), "_", tag);
}

Config SmallConfig(const std::string& run_root, int steps, int ckpt_every) {
  absl::StatusOr<Config> config = LoadEmbeddedTinyConfig(
      {absl::StrCat("train { steps: ", steps, " batch_size: 4 log_every: 5 eval_every: 0 "
                    "eval_batches: 1 run_root: '", run_root, "' }"),
       absl::StrCat("checkpoint { every: ", ckpt_every, " keep: 2 }"),
       "data { seq_len: 32 } optim { warmup_steps: 4 } stats { window: 16 }"});
  EXPECT_TRUE(config.ok()) << config.status();
  return *config;
}

TrainOptions Quiet() {
  TrainOptions options;
  options.print_progress = false;
  return options;
}

// A model + optimizer built from `config`, for loading checkpoints into.
struct Loaded {
  explicit Loaded(const Config& config)
      : backend(*MakeBackend(Device::kCpu)),
        model(config.model(), 1, config.data().seq_len(), backend.get(), &arena),
        optimizer_ptr(*OptimizerSet::Create(config.optim(), model.parameters(), &arena)),
        optimizer(*optimizer_ptr) {}
  std::unique_ptr<Backend> backend;
  Arena arena;
  Model model;
  std::unique_ptr<OptimizerSet> optimizer_ptr;
  OptimizerSet& optimizer;
};

TEST(CheckpointTest, ResumeContinuesBitForBit) {
  const Config straight_config = SmallConfig(TestRoot("straight"), 40, 0);
  const absl::StatusOr<TrainResult> straight = Train(straight_config, Quiet());
  ASSERT_TRUE(straight.ok()) << straight.status();

  TrainOptions first_half = Quiet();
  first_half.stop_at_step = 20;
  const Config split_config = SmallConfig(TestRoot("split"), 40, 0);
  const absl::StatusOr<TrainResult> a = Train(split_config, first_half);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(ListCheckpoints(a->run_dir).size(), 1u);  // the stop writes one
  TrainOptions second_half = Quiet();
  second_half.resume_dir = a->run_dir;
  const absl::StatusOr<TrainResult> b = Train(split_config, second_half);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->first_step, 20);

  std::vector<float> resumed = a->step_losses;
  resumed.insert(resumed.end(), b->step_losses.begin(), b->step_losses.end());
  ASSERT_EQ(resumed.size(), straight->step_losses.size());
  for (size_t i = 0; i < resumed.size(); ++i) {
    EXPECT_EQ(resumed[i], straight->step_losses[i]) << "step " << i;
  }
  // Final weights: bit-identical files (same tensors, same metadata apart from run_root).
  Loaded x(straight_config), y(split_config);
  ASSERT_TRUE(LoadCheckpoint(CheckpointDir(straight->run_dir, 40), &x.model, &x.optimizer).ok());
  ASSERT_TRUE(LoadCheckpoint(CheckpointDir(b->run_dir, 40), &y.model, &y.optimizer).ok());
  for (size_t p = 0; p < x.model.parameters().size(); ++p) {
    const Tensor& tx = x.model.parameters()[p]->master;
    const Tensor& ty = y.model.parameters()[p]->master;
    ASSERT_EQ(std::memcmp(tx.data(), ty.data(), tx.nbytes()), 0)
        << x.model.parameters()[p]->name;
  }
}

class TrainedRun : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    config_ = new Config(SmallConfig(TestRoot("trained"), 6, 2));
    const absl::StatusOr<TrainResult> result = Train(*config_, Quiet());
    ASSERT_TRUE(result.ok()) << result.status();
    run_dir_ = new std::string(result->run_dir);
  }
  static Config* config_;
  static std::string* run_dir_;
};
Config* TrainedRun::config_ = nullptr;
std::string* TrainedRun::run_dir_ = nullptr;

TEST_F(TrainedRun, KeepsTheNewestCheckpoints) {
  const std::vector<std::string> dirs = ListCheckpoints(*run_dir_);
  ASSERT_EQ(dirs.size(), 2u);  // keep: 2 of steps 2, 4, 6
  EXPECT_EQ(dirs[0], CheckpointDir(*run_dir_, 4));
  EXPECT_EQ(dirs[1], CheckpointDir(*run_dir_, 6));
}

TEST_F(TrainedRun, TruncatedCheckpointIsRefusedAtEveryCut) {
  const std::string original = CheckpointDir(*run_dir_, 6) + "/state.safetensors";
  const absl::StatusOr<std::string> bytes = ReadFileToString(original);
  ASSERT_TRUE(bytes.ok());
  const std::string dir = TestRoot("cut") + "/ckpt_00000006";
  ASSERT_TRUE(MakeDirs(dir).ok());
  Loaded loaded(*config_);
  // Every byte of the first KiB, every 7th byte of the rest of the header (metadata with the
  // config, ~80 tensor entries; ~1,500 cuts), then 50 cuts spread over the data.
  uint64_t header_bytes = 0;
  std::memcpy(&header_bytes, bytes->data(), 8);
  std::vector<size_t> cuts;
  for (size_t c = 0; c < 8 + header_bytes + 16; c += (c < 1024 ? 1 : 7)) cuts.push_back(c);
  for (size_t i = 1; i < 50; ++i) cuts.push_back(bytes->size() * i / 50);
  cuts.push_back(bytes->size() - 1);
  for (const size_t cut : cuts) {
    std::ofstream(dir + "/state.safetensors", std::ios::binary | std::ios::trunc)
        .write(bytes->data(), static_cast<std::streamsize>(cut));
    const absl::StatusOr<int64_t> step = LoadCheckpoint(dir, &loaded.model, &loaded.optimizer);
    ASSERT_FALSE(step.ok()) << "cut at " << cut;
    EXPECT_NE(step.status().message().find("state.safetensors"), std::string::npos)
        << step.status();
  }
}

TEST_F(TrainedRun, CorruptNewestFallsBackToThePreviousOne) {
  const std::string root = TestRoot("corrupt");
  fs::copy(*run_dir_, root, fs::copy_options::recursive);
  std::string header_damaged = *ReadFileToString(CheckpointDir(root, 6) + "/state.safetensors");
  header_damaged[12] = '#';  // inside the JSON header
  ASSERT_TRUE(
      WriteFileAtomically(CheckpointDir(root, 6) + "/state.safetensors", header_damaged).ok());
  Loaded loaded(*config_);
  EXPECT_FALSE(LoadCheckpoint(CheckpointDir(root, 6), &loaded.model, &loaded.optimizer).ok());
  const absl::StatusOr<int64_t> step = LoadLatestCheckpoint(root, &loaded.model, &loaded.optimizer);
  ASSERT_TRUE(step.ok()) << step.status();
  EXPECT_EQ(*step, 4);
}

TEST_F(TrainedRun, KillDuringCheckpointWriteLeavesPreviousLoadable) {
  const std::string root = TestRoot("kill");
  fs::copy(*run_dir_, root, fs::copy_options::recursive);
  Loaded loaded(*config_);
  ASSERT_TRUE(LoadLatestCheckpoint(root, &loaded.model, &loaded.optimizer).ok());
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::setenv("SINKLAB_CRASH_POINT", "checkpoint_before_rename", 1);
    (void)SaveCheckpoint(root, 8, loaded.model, loaded.optimizer, *config_, 2);
    ::_exit(0);  // not reached: the crash point kills the child
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  EXPECT_TRUE(fs::exists(CheckpointDir(root, 8) + ".tmp"));  // the interrupted write
  const absl::StatusOr<int64_t> step = LoadLatestCheckpoint(root, &loaded.model, &loaded.optimizer);
  ASSERT_TRUE(step.ok()) << step.status();
  EXPECT_EQ(*step, 6);
}

TEST_F(TrainedRun, ExportsHuggingFaceNamesAndNativeWeights) {
  const std::string out = TestRoot("export_hf");
  ASSERT_TRUE(ExportCheckpoint({CheckpointDir(*run_dir_, 6), "hf", out, "bf16"}).ok());
  const absl::StatusOr<SafetensorsFile> hf = SafetensorsFile::Read(out + "/model.safetensors");
  ASSERT_TRUE(hf.ok()) << hf.status();
  EXPECT_EQ(hf->metadata().at("format"), "pt");
  const absl::StatusOr<SafetensorsEntry> q = hf->Get("model.layers.3.self_attn.q_proj.weight");
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(q->dtype, DType::kBF16);
  EXPECT_EQ(q->shape, (std::vector<int64_t>{128, 128}));
  EXPECT_TRUE(hf->Get("lm_head.weight").ok());
  EXPECT_EQ(hf->names().size(), 2u + 4u * 9u + 1u);
  const absl::StatusOr<std::string> json = ReadFileToString(out + "/config.json");
  ASSERT_TRUE(json.ok());
  EXPECT_NE(json->find("\"num_key_value_heads\": 4"), std::string::npos) << *json;
  EXPECT_NE(json->find("\"LlamaForCausalLM\""), std::string::npos);

  const std::string native = TestRoot("export_native");
  ASSERT_TRUE(ExportCheckpoint({CheckpointDir(*run_dir_, 6), "native", native, "f32"}).ok());
  const absl::StatusOr<SafetensorsFile> nat = SafetensorsFile::Read(native + "/model.safetensors");
  ASSERT_TRUE(nat.ok());
  EXPECT_TRUE(nat->Get("layers.0.attn.wq").ok());
}

TEST(ExportTest, RefusesSwitchesLlamaCannotExpressNamingThem) {
  ModelConfig model;
  EXPECT_TRUE(CheckLlamaExpressible(model).ok());
  model.mutable_attention()->set_qk_norm(true);
  const absl::Status status = CheckLlamaExpressible(model);
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.message().find("model.attention.qk_norm"), std::string::npos);
  EXPECT_EQ(HuggingFaceName("layers.11.ffn.w_down"), "model.layers.11.mlp.down_proj.weight");
  EXPECT_EQ(HuggingFaceName("layers.0.attn_norm"), "model.layers.0.input_layernorm.weight");
  EXPECT_EQ(HuggingFaceName("embed"), "model.embed_tokens.weight");
}

}  // namespace
}  // namespace sinklab

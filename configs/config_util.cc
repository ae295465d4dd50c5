#include "configs/config_util.h"

#include "absl/strings/str_cat.h"
#include "core/status.h"

namespace sinklab {

int HeadDim(const ModelConfig& model) {
  SL_CHECK_MSG(model.n_heads() > 0 && model.d_model() % model.n_heads() == 0,
               absl::StrCat("d_model=", model.d_model(), " n_heads=", model.n_heads(),
                            " (was the config validated?)"));
  return model.d_model() / model.n_heads();
}

int KvHeads(const ModelConfig& model) {
  return model.n_kv_heads() == 0 ? model.n_heads() : model.n_kv_heads();
}

int MicroBatchSize(const TrainConfig& train) {
  return train.micro_batch_size() == 0 ? train.batch_size() : train.micro_batch_size();
}

int GradAccumSteps(const TrainConfig& train) {
  const int micro = MicroBatchSize(train);
  SL_CHECK_MSG(micro > 0 && train.batch_size() % micro == 0,
               absl::StrCat("batch_size=", train.batch_size(), " micro_batch_size=", micro,
                            " (was the config validated?)"));
  return train.batch_size() / micro;
}

std::vector<float> SinkEpsList(const StatsConfig& stats) {
  if (stats.eps_size() == 0) return {kDefaultSinkEps};
  return std::vector<float>(stats.eps().begin(), stats.eps().end());
}

}  // namespace sinklab

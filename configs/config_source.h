// ConfigSource: where each field of a loaded config was written (file:line:column), so that
// validation errors can point at the text a user must edit.
//
// A config is the merge of several texts: the config file, then each `--set` fragment in
// order. Each text's field locations are recorded by protobuf's TextFormat::ParseInfoTree;
// the location of a field is taken from the LAST text that set it (the one whose value won
// the merge).
#ifndef SINKLAB_CONFIGS_CONFIG_SOURCE_H_
#define SINKLAB_CONFIGS_CONFIG_SOURCE_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "google/protobuf/text_format.h"

namespace sinklab {

class ConfigSource {
 public:
  ConfigSource() = default;
  ConfigSource(ConfigSource&&) = default;
  ConfigSource& operator=(ConfigSource&&) = default;

  // Registers one parsed text, in merge order, under `name` (a file path or "--set[<i>]");
  // returns the tree the parser fills (owned by this object).
  google::protobuf::TextFormat::ParseInfoTree* AddText(std::string name);

  // "<name>:<line>:<column>" (1-based) of where `field_path` was set, e.g. "model.n_heads"
  // or "stats.eps[1]", or "" when no text set it (the value is the schema default). For a
  // repeated field the i-th occurrence of the field in merge order is used (a list written
  // as `eps: [0.1, 0.2]` counts as one occurrence; later elements map to it). A path that
  // names no field of `Config` is a programmer error. When `text_index` is given it
  // receives the merge-order index of the text found (-1 when none).
  std::string LocationOf(absl::string_view field_path, int* text_index = nullptr) const;

  int num_texts() const { return static_cast<int>(texts_.size()); }

 private:
  struct Text {
    std::string name;
    std::unique_ptr<google::protobuf::TextFormat::ParseInfoTree> tree;
  };
  std::vector<Text> texts_;
};

}  // namespace sinklab

#endif  // SINKLAB_CONFIGS_CONFIG_SOURCE_H_

#include "configs/config_source.h"

#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "configs/sinklab.pb.h"
#include "core/status.h"

namespace sinklab {
namespace {

using google::protobuf::FieldDescriptor;
using ParseInfoTree = google::protobuf::TextFormat::ParseInfoTree;
using ParseLocation = google::protobuf::TextFormat::ParseLocation;

// One step of a field path: "n_heads" (index -1) or "eps[1]" (index 1).
struct PathStep {
  const FieldDescriptor* field = nullptr;
  int index = -1;
};

// Resolves "model.n_heads" / "stats.eps[1]" against Config's descriptor.
std::vector<PathStep> ResolvePath(absl::string_view field_path) {
  std::vector<PathStep> steps;
  const google::protobuf::Descriptor* message = Config::descriptor();
  for (absl::string_view part : absl::StrSplit(field_path, '.')) {
    SL_CHECK_MSG(message != nullptr,
                 absl::StrCat("config path '", field_path, "' goes below a scalar field"));
    PathStep step;
    const size_t bracket = part.find('[');
    if (bracket != absl::string_view::npos) {
      const bool ok = part.back() == ']' &&
                      absl::SimpleAtoi(part.substr(bracket + 1, part.size() - bracket - 2),
                                       &step.index) &&
                      step.index >= 0;
      SL_CHECK_MSG(ok, absl::StrCat("bad index in config path '", field_path, "'"));
      part = part.substr(0, bracket);
    }
    step.field = message->FindFieldByName(std::string(part));
    SL_CHECK_MSG(step.field != nullptr,
                 absl::StrCat("config path '", field_path, "' names no field of ",
                              message->full_name()));
    SL_CHECK_MSG(step.field->is_repeated() == (step.index >= 0),
                 absl::StrCat("config path '", field_path,
                              "': index a repeated field, and only a repeated field"));
    message = step.field->message_type();
    steps.push_back(step);
  }
  return steps;
}

std::string FormatLocation(const std::string& name, const ParseLocation& location) {
  return absl::StrCat(name, ":", location.line + 1, ":", location.column + 1);
}

}  // namespace

ParseInfoTree* ConfigSource::AddText(std::string name) {
  texts_.push_back(Text{std::move(name), std::make_unique<ParseInfoTree>()});
  return texts_.back().tree.get();
}

std::string ConfigSource::LocationOf(absl::string_view field_path, int* text_index) const {
  int unused_index = -1;
  if (text_index == nullptr) text_index = &unused_index;
  *text_index = -1;
  const std::vector<PathStep> steps = ResolvePath(field_path);
  const PathStep& leaf = steps.back();
  // The tree of each text for the message that holds the leaf (null: the text did not
  // open that message). Parents are singular or indexed explicitly.
  std::vector<const ParseInfoTree*> parents;
  for (const Text& text : texts_) {
    const ParseInfoTree* tree = text.tree.get();
    for (size_t i = 0; i + 1 < steps.size() && tree != nullptr; ++i) {
      tree = tree->GetTreeForNested(steps[i].field, steps[i].index);
    }
    parents.push_back(tree);
  }
  if (!leaf.field->is_repeated()) {
    for (int t = num_texts() - 1; t >= 0; --t) {
      if (parents[t] == nullptr) continue;
      const ParseLocation location = parents[t]->GetLocation(leaf.field, -1);
      if (location.line >= 0) {
        *text_index = t;
        return FormatLocation(texts_[t].name, location);
      }
    }
    return "";
  }
  // Repeated leaf: merging appends, so occurrences count up across texts in merge order.
  std::string last;
  int occurrence = 0;
  for (int t = 0; t < num_texts(); ++t) {
    if (parents[t] == nullptr) continue;
    for (int i = 0;; ++i) {
      const ParseLocation location = parents[t]->GetLocation(leaf.field, i);
      if (location.line < 0) break;
      last = FormatLocation(texts_[t].name, location);
      *text_index = t;
      if (occurrence++ == leaf.index) return last;
    }
  }
  return last;
}

}  // namespace sinklab

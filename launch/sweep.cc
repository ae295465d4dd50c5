#include "launch/sweep.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "configs/config_loader.h"
#include "core/file_util.h"
#include "core/status.h"
#include "google/protobuf/io/tokenizer.h"

namespace sinklab {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::TextFormat;

// Protobuf's parse errors of a sweep text as "<path>:<line>:<column>: <message>" (protobuf
// counts from 0).
class SweepErrorCollector : public google::protobuf::io::ErrorCollector {
 public:
  explicit SweepErrorCollector(std::string path) : path_(std::move(path)) {}
  void AddError(int line, google::protobuf::io::ColumnNumber column,
                const std::string& message) override {
    errors_.push_back(line < 0 ? absl::StrCat(path_, ": ", message)
                               : absl::StrCat(path_, ":", line + 1, ":", column + 1, ": ",
                                              message));
  }
  const std::vector<std::string>& errors() const { return errors_; }

 private:
  std::string path_;
  std::vector<std::string> errors_;
};

const FieldDescriptor* SweepField(const char* name) {
  return Sweep::descriptor()->FindFieldByName(name);
}

// "<path>:<line>:<column>" of `field` of value `value` of axis `axis` (value -1: a field of
// the axis; axis -1: a singular field of the sweep), or of the closest enclosing element the
// text has (an unset label: its value block), or "<path>" alone.
std::string Where(const SweepFile& file, int axis, int value, const char* field) {
  if (file.locations == nullptr) return file.path;
  TextFormat::ParseLocation best;
  const auto try_location = [&best](const TextFormat::ParseInfoTree* tree,
                                    const FieldDescriptor* descriptor, int index) {
    if (tree == nullptr || descriptor == nullptr) return;
    if (descriptor->is_repeated() != (index >= 0)) return;
    const TextFormat::ParseLocation location = tree->GetLocation(descriptor, index);
    if (location.line >= 0) best = location;
  };
  const TextFormat::ParseInfoTree* root = file.locations.get();
  if (axis < 0) {
    try_location(root, SweepField(field), -1);
  } else {
    const FieldDescriptor* axis_field = SweepField("axis");
    try_location(root, axis_field, axis);
    const TextFormat::ParseInfoTree* axis_tree = root->GetTreeForNested(axis_field, axis);
    if (value < 0) {
      try_location(axis_tree, SweepAxis::descriptor()->FindFieldByName(field), -1);
    } else if (axis_tree != nullptr) {
      const FieldDescriptor* value_field = SweepAxis::descriptor()->FindFieldByName("value");
      try_location(axis_tree, value_field, value);
      try_location(axis_tree->GetTreeForNested(value_field, value),
                   SweepValue::descriptor()->FindFieldByName(field), -1);
    }
  }
  if (best.line < 0) return file.path;
  return absl::StrCat(file.path, ":", best.line + 1, ":", best.column + 1);
}

absl::Status SweepError(const SweepFile& file, int axis, int value, const char* field,
                        const std::string& message) {
  return absl::InvalidArgumentError(absl::StrCat(Where(file, axis, value, field), ": ", message));
}

// A label is a piece of a folder name; '_' joins labels, so it is not allowed in one.
bool ValidLabel(const std::string& label) {
  if (label.empty()) return false;
  for (const char c : label) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '-' || c == '+';
    if (!ok) return false;
  }
  return label != "." && label != "..";
}

// The sweep's folder name: Sweep.name, or the file name without its extension.
std::string SweepName(const SweepFile& file) {
  if (file.sweep.has_name()) return file.sweep.name();
  std::string stem = file.path.substr(file.path.find_last_of('/') + 1);
  const size_t dot = stem.find('.');
  return dot == std::string::npos || dot == 0 ? stem : stem.substr(0, dot);
}

// A Config message as a one-line text-proto fragment, merged like --set.
std::string FragmentText(const Config& config) {
  TextFormat::Printer printer;
  printer.SetSingleLineMode(true);
  std::string text;
  printer.PrintToString(config, &text);
  return text;
}

absl::Status CheckAxes(const SweepFile& file) {
  const Sweep& sweep = file.sweep;
  if (sweep.base_config().empty()) {
    return SweepError(file, -1, -1, "base_config", "base_config (the config file) is required");
  }
  const std::string name = SweepName(file);
  if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos) {
    return SweepError(file, -1, -1, "name",
                      absl::StrCat("name '", name, "' cannot name the sweep's folder"));
  }
  if (sweep.axis_size() == 0) {
    return SweepError(file, -1, -1, "axis", "a sweep needs at least one axis { ... }");
  }
  for (int a = 0; a < sweep.axis_size(); ++a) {
    const SweepAxis& axis = sweep.axis(a);
    const std::string axis_name = absl::StrCat("axis[", a, "] '", axis.name(), "'");
    if (axis.name().empty()) {
      return SweepError(file, a, -1, "name", absl::StrCat("axis[", a, "]: name is required"));
    }
    if (axis.value_size() == 0) {
      return SweepError(file, a, -1, "name",
                        absl::StrCat(axis_name, ": needs at least one value { label: ... }"));
    }
    for (int v = 0; v < axis.value_size(); ++v) {
      const std::string& label = axis.value(v).label();
      if (!ValidLabel(label)) {
        return SweepError(file, a, v, "label",
                          absl::StrCat(axis_name, " value[", v, "]: label '", label,
                                       "' must be letters, digits, '.', '-' or '+' (it names "
                                       "the run directory; '_' joins the labels)"));
      }
      for (int w = 0; w < v; ++w) {
        if (axis.value(w).label() == label) {
          return SweepError(file, a, v, "label",
                            absl::StrCat(axis_name, " value[", v, "]: label '", label,
                                         "' repeats value[", w, "]"));
        }
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<SweepFile> ParseSweepText(const std::string& text, const std::string& path) {
  SweepFile file;
  file.path = path;
  file.locations = std::make_shared<TextFormat::ParseInfoTree>();
  SweepErrorCollector errors(path);
  TextFormat::Parser parser;
  parser.RecordErrorsTo(&errors);
  parser.AllowUnknownField(false);
  parser.AllowUnknownExtension(false);
  parser.WriteLocationsTo(file.locations.get());
  if (!parser.ParseFromString(text, &file.sweep)) {
    return absl::InvalidArgumentError(errors.errors().empty()
                                          ? absl::StrCat(path, ": cannot parse the sweep")
                                          : absl::StrJoin(errors.errors(), "\n"));
  }
  return file;
}

absl::StatusOr<SweepFile> LoadSweep(const std::string& path) {
  SL_ASSIGN_OR_RETURN(const std::string text, ReadFileToString(path));
  return ParseSweepText(text, path);
}

absl::StatusOr<std::vector<SweepRun>> ExpandSweep(const SweepFile& file,
                                                  const std::vector<std::string>& overrides) {
  SL_RETURN_IF_ERROR(CheckAxes(file));
  const Sweep& sweep = file.sweep;
  const std::string sweep_name = SweepName(file);
  absl::StatusOr<std::string> base_text = ReadFileToString(sweep.base_config());
  if (!base_text.ok()) {
    return Annotate(base_text.status(), absl::StrCat(Where(file, -1, -1, "base_config"),
                                                     ": base_config"));
  }
  // Odometer over the axes, the last axis fastest: run k picks value digits[a] of axis a.
  std::vector<int> digits(sweep.axis_size(), 0);
  std::vector<SweepRun> runs;
  while (true) {
    std::vector<std::string> fragments, origins, labels, what;
    if (sweep.has_overrides()) {
      fragments.push_back(FragmentText(sweep.overrides()));
      origins.push_back(absl::StrCat("--set[", fragments.size(), "] = the sweep's overrides"));
    }
    for (int a = 0; a < sweep.axis_size(); ++a) {
      const SweepValue& value = sweep.axis(a).value(digits[a]);
      labels.push_back(value.label());
      what.push_back(absl::StrCat(sweep.axis(a).name(), "=", value.label()));
      if (!value.has_overrides()) continue;
      fragments.push_back(FragmentText(value.overrides()));
      origins.push_back(absl::StrCat("--set[", fragments.size(), "] = axis '",
                                     sweep.axis(a).name(), "' value '", value.label(), "'"));
    }
    for (const std::string& fragment : overrides) {
      fragments.push_back(fragment);
      origins.push_back(absl::StrCat("--set[", fragments.size(), "] = the command line's --set"));
    }
    SweepRun run;
    run.label = absl::StrJoin(labels, "_");
    run.what = absl::StrJoin(what, " ");
    absl::StatusOr<Config> config =
        LoadConfigFromText(*base_text, sweep.base_config(), fragments);
    if (!config.ok()) {
      return Annotate(config.status(),
                      absl::StrCat(file.path, ": run ", run.label, " (",
                                   origins.empty() ? "the base config alone"
                                                   : absl::StrJoin(origins, ", "),
                                   ")"));
    }
    run.config = *std::move(config);
    run.config.set_name(absl::StrCat(sweep_name, "_", run.label));
    run.run_dir = absl::StrCat(run.config.train().run_root(), "/", sweep_name, "/", run.label);
    runs.push_back(std::move(run));
    int a = sweep.axis_size() - 1;
    while (a >= 0 && ++digits[a] == sweep.axis(a).value_size()) digits[a--] = 0;
    if (a < 0) break;
  }
  return runs;
}

}  // namespace sinklab

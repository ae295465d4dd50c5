// Loading a run's Config: a text-format file (or text), `--set` fragments merged over it in
// order (protobuf MergeFrom: scalars replace, sub-messages merge, repeated fields append),
// then ValidateConfig. Every error names its text and 1-based line:column, e.g.
//   configs/tiny.textproto:7:3: Message type "sinklab.ModelConfig" has no field named "n_head".
//   --set[1]:1:9: Expected integer, got: "eight"
// Unknown fields and extensions are refused, never skipped.
#ifndef SINKLAB_CONFIGS_CONFIG_LOADER_H_
#define SINKLAB_CONFIGS_CONFIG_LOADER_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "configs/config_source.h"
#include "configs/sinklab.pb.h"

namespace sinklab {

// Parses `text` (named `source_name` in errors) into `config`, replacing its contents. When
// `source` is given, the text's field locations are recorded in it. Does not validate.
// InvalidArgument on any syntax error, unknown field, wrong value type or bad enum name.
absl::Status ParseConfigText(const std::string& text, const std::string& source_name,
                             Config* config, ConfigSource* source = nullptr);

// Parses `text`, merges each of `overrides` over it (the i-th named "--set[i]", 1-based)
// and validates the result.
absl::StatusOr<Config> LoadConfigFromText(const std::string& text,
                                          const std::string& source_name,
                                          const std::vector<std::string>& overrides);

// LoadConfigFromText on the contents of the file at `path` (named `path` in errors).
// NotFound / PermissionDenied / ... when the file cannot be read.
absl::StatusOr<Config> LoadConfig(const std::string& path,
                                  const std::vector<std::string>& overrides);

// LoadConfigFromText on the embedded configs/tiny.textproto (the default job).
absl::StatusOr<Config> LoadEmbeddedTinyConfig(const std::vector<std::string>& overrides);

}  // namespace sinklab

#endif  // SINKLAB_CONFIGS_CONFIG_LOADER_H_

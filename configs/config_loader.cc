#include "configs/config_loader.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "configs/embedded_config.h"
#include "configs/validate.h"
#include "core/log.h"
#include "core/status.h"
#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "google/protobuf/text_format.h"

namespace sinklab {
namespace {

namespace io = google::protobuf::io;

// Swallows the errors of the re-tokenizing pass below (the parser reports them already).
class IgnoreErrors : public io::ErrorCollector {
 public:
  void AddError(int, io::ColumnNumber, const std::string&) override {}
};

// Protobuf reports some errors at the token AFTER the offending one (an unknown field or
// enum name, a singular field given twice, a bad bool), which may sit on the next line.
// Those messages quote the offending token: when `message` quotes the token before
// (line, column) and not the one at it, moves (line, column) back to that token.
void PointAtQuotedToken(const std::string& text, const std::string& message, int* line,
                        int* column) {
  io::ArrayInputStream input(text.data(), static_cast<int>(text.size()));
  IgnoreErrors ignore;
  io::Tokenizer tokenizer(&input, &ignore);
  tokenizer.set_comment_style(io::Tokenizer::SH_COMMENT_STYLE);  // as TextFormat's
  tokenizer.set_require_space_after_number(false);
  tokenizer.set_allow_f_after_float(true);
  tokenizer.set_allow_multiline_strings(true);
  bool has_previous = false;
  io::Tokenizer::Token previous;
  std::string reported;  // text of the token at (line, column), if one starts there
  while (tokenizer.Next()) {
    const io::Tokenizer::Token& token = tokenizer.current();
    if (token.line > *line || (token.line == *line && token.column >= *column)) {
      if (token.line == *line && token.column == *column) reported = token.text;
      break;
    }
    previous = token;
    has_previous = true;
  }
  const auto quotes = [&message](const std::string& token) {
    return absl::StrContains(message, absl::StrCat("\"", token, "\""));
  };
  if (!has_previous || !quotes(previous.text)) return;
  if (!reported.empty() && quotes(reported)) return;
  *line = previous.line;
  *column = previous.column;
}

// Collects protobuf's parse errors of `text` as "<source>:<line>:<column>: <message>";
// protobuf counts lines and columns from 0 (a tab advances the column to a multiple of 8).
class ConfigErrorCollector : public io::ErrorCollector {
 public:
  ConfigErrorCollector(const std::string& text, std::string source_name)
      : text_(text), source_name_(std::move(source_name)) {}

  void AddError(int line, io::ColumnNumber column, const std::string& message) override {
    if (line >= 0) PointAtQuotedToken(text_, message, &line, &column);
    // At the end of the input protobuf names an empty token ("Expected identifier, got: ").
    const bool at_end = absl::EndsWith(message, "got: ");
    errors_.push_back(
        absl::StrCat(Where(line, column), message, at_end ? "end of input" : ""));
  }
  void AddWarning(int line, io::ColumnNumber column, const std::string& message) override {
    LogWarning(absl::StrCat(Where(line, column), message));
  }

  const std::vector<std::string>& errors() const { return errors_; }

 private:
  std::string Where(int line, int column) const {
    if (line < 0) return absl::StrCat(source_name_, ": ");
    return absl::StrCat(source_name_, ":", line + 1, ":", column + 1, ": ");
  }

  const std::string& text_;
  std::string source_name_;
  std::vector<std::string> errors_;
};

absl::StatusOr<std::string> ReadConfigFile(const std::string& path) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) {
    const int error = errno;
    const std::string what =
        absl::StrCat("cannot open config file '", path, "': ", std::strerror(error));
    if (error == ENOENT) return absl::NotFoundError(what);
    if (error == EACCES) return absl::PermissionDeniedError(what);
    return absl::InvalidArgumentError(what);
  }
  std::string text;
  char buffer[1 << 14];
  size_t n = 0;
  while ((n = std::fread(buffer, 1, sizeof(buffer), file)) > 0) text.append(buffer, n);
  // A directory opens but fails to read (EISDIR): refuse it rather than parse "" as defaults.
  const int error = std::ferror(file) ? errno : 0;
  std::fclose(file);
  if (error != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot read config file '", path, "': ", std::strerror(error)));
  }
  return text;
}

}  // namespace

absl::Status ParseConfigText(const std::string& text, const std::string& source_name,
                             Config* config, ConfigSource* source) {
  ConfigErrorCollector errors(text, source_name);
  google::protobuf::TextFormat::Parser parser;
  parser.RecordErrorsTo(&errors);
  // Refuse, never skip, what the schema does not know (these are protobuf's defaults too).
  parser.AllowUnknownField(false);
  parser.AllowUnknownExtension(false);
  parser.AllowFieldNumber(false);
  if (source != nullptr) parser.WriteLocationsTo(source->AddText(source_name));
  if (parser.ParseFromString(text, config)) return absl::OkStatus();
  if (errors.errors().empty()) {
    return absl::InvalidArgumentError(absl::StrCat(source_name, ": cannot parse config"));
  }
  return absl::InvalidArgumentError(absl::StrJoin(errors.errors(), "\n"));
}

absl::StatusOr<Config> LoadConfigFromText(const std::string& text,
                                          const std::string& source_name,
                                          const std::vector<std::string>& overrides) {
  ConfigSource source;
  Config config;
  SL_RETURN_IF_ERROR(ParseConfigText(text, source_name, &config, &source));
  for (size_t i = 0; i < overrides.size(); ++i) {
    Config fragment;
    SL_RETURN_IF_ERROR(
        ParseConfigText(overrides[i], absl::StrCat("--set[", i + 1, "]"), &fragment, &source));
    config.MergeFrom(fragment);
  }
  SL_RETURN_IF_ERROR(ValidateConfig(config, source));
  return config;
}

absl::StatusOr<Config> LoadConfig(const std::string& path,
                                  const std::vector<std::string>& overrides) {
  SL_ASSIGN_OR_RETURN(const std::string text, ReadConfigFile(path));
  return LoadConfigFromText(text, path, overrides);
}

absl::StatusOr<Config> LoadEmbeddedTinyConfig(const std::vector<std::string>& overrides) {
  return LoadConfigFromText(EmbeddedTinyConfigText(), kEmbeddedTinyConfigName, overrides);
}

}  // namespace sinklab

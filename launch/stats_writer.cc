#include "launch/stats_writer.h"

#include <cerrno>
#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/file_util.h"

namespace sinklab {
namespace {

// "0.3" for eps 0.3f: the shortest form that names the threshold in keys.
std::string EpsName(float eps) { return absl::StrFormat("%g", eps); }

// A JSON number with 9 significant digits (exact for fp32), null when not finite.
std::string Number(double value) {
  return std::isfinite(value) ? absl::StrFormat("%.9g", value) : "null";
}

std::string Array(const std::vector<double>& values) {
  std::string out = "[";
  for (size_t i = 0; i < values.size(); ++i) {
    absl::StrAppend(&out, i ? ", " : "", Number(values[i]));
  }
  return out + "]";
}

std::string Array(const LayerHeadArray& values) {
  std::string out = "[";
  for (size_t i = 0; i < values.size(); ++i) {
    absl::StrAppend(&out, i ? ", " : "", Array(values[i]));
  }
  return out + "]";
}

std::string Sites(const std::vector<ActivationSite>& sites) {
  std::string out = "[";
  for (size_t i = 0; i < sites.size(); ++i) {
    const ActivationSite& s = sites[i];
    absl::StrAppend(&out, i ? ", " : "", "{\"sample\": ", s.sample, ", \"position\": ",
                    s.position, ", \"channel\": ", s.channel, ", \"value\": ", Number(s.value),
                    "}");
  }
  return out + "]";
}

// Builds {"key": value, ...} from already-encoded values.
class ObjectBuilder {
 public:
  ObjectBuilder& Raw(const std::string& key, const std::string& json) {
    absl::StrAppend(&text_, text_.empty() ? "{" : ", ", JsonEscape(key), ": ", json);
    return *this;
  }
  std::string Close() const { return text_.empty() ? "{}" : text_ + "}"; }

 private:
  std::string text_;
};

}  // namespace

std::vector<std::pair<std::string, double>> StatsScalars(const StatsReport& report) {
  std::vector<std::pair<std::string, double>> scalars;
  for (size_t e = 0; e < report.eps.size(); ++e) {
    scalars.emplace_back("sink_" + EpsName(report.eps[e]), report.sink[e]);
  }
  scalars.emplace_back("first_token_mass", report.first_token_mass_mean);
  if (!report.prefix_mass.empty()) scalars.emplace_back("prefix_mass", report.prefix_mass_mean);
  if (!report.virtual_mass.empty()) {
    scalars.emplace_back("virtual_mass", report.virtual_mass_mean);
  }
  if (!report.bias_mass.empty()) scalars.emplace_back("bias_mass", report.bias_mass_mean);
  scalars.emplace_back("max_top1_ratio", report.max_top1_ratio);
  scalars.emplace_back("max_kurtosis", report.max_kurtosis);
  scalars.emplace_back("max_linear_input_abs", report.max_linear_input_abs);
  scalars.emplace_back("mean_entropy", report.mean_entropy);
  scalars.emplace_back("token0_norm_ratio_max", report.token0_norm_ratio_max);
  if (!report.gate_mean.empty()) scalars.emplace_back("gate_mean", report.gate_mean_mean);
  return scalars;
}

JsonRecord& AddStatsScalars(const StatsReport& report, JsonRecord& record) {
  for (const auto& [name, value] : StatsScalars(report)) record.Add(name, value);
  return record;
}

std::string StatsLineJson(int64_t step, const StatsReport& report) {
  ObjectBuilder line;
  line.Raw("step", step >= 0 ? absl::StrCat(step) : "null");
  line.Raw("samples", absl::StrCat(report.samples)).Raw("window", absl::StrCat(report.window));
  line.Raw("seq_len", absl::StrCat(report.seq_len));
  line.Raw("prefix_tokens", absl::StrCat(report.prefix_tokens));
  line.Raw("bias_keys", absl::StrCat(report.bias_keys));
  std::vector<double> eps(report.eps.begin(), report.eps.end());
  line.Raw("eps", Array(eps));
  ObjectBuilder sink, sink_ratio;
  for (size_t e = 0; e < report.eps.size(); ++e) {
    sink.Raw(EpsName(report.eps[e]), Number(report.sink[e]));
    sink_ratio.Raw(EpsName(report.eps[e]), Array(report.sink_ratio[e]));
  }
  line.Raw("sink", sink.Close()).Raw("sink_ratio", sink_ratio.Close());
  line.Raw("first_token_mass", Array(report.first_token_mass));
  if (!report.prefix_mass.empty()) line.Raw("prefix_mass", Array(report.prefix_mass));
  if (!report.virtual_mass.empty()) line.Raw("virtual_mass", Array(report.virtual_mass));
  if (!report.bias_mass.empty()) line.Raw("bias_mass", Array(report.bias_mass));
  line.Raw("entropy", Array(report.entropy));
  std::string top3 = "[";
  for (size_t l = 0; l < report.top3.size(); ++l) {
    absl::StrAppend(&top3, l ? ", " : "", Sites(report.top3[l]));
  }
  line.Raw("top3", top3 + "]");
  line.Raw("median_abs", Array(report.median_abs)).Raw("top1_ratio", Array(report.top1_ratio));
  line.Raw("kurtosis", Array(report.kurtosis));
  ObjectBuilder linear;
  for (const auto& [name, value] : report.linear_input_max) linear.Raw(name, Number(value));
  line.Raw("linear_input_max", linear.Close());
  line.Raw("token0_norm_ratio", Array(report.token0_norm_ratio));
  line.Raw("value_norm_ratio", Array(report.value_norm_ratio));
  if (!report.gate_mean.empty()) line.Raw("gate_mean", Array(report.gate_mean));
  return line.Close();
}

std::string FormatStatsSummary(const StatsReport& report) {
  std::string out;
  for (size_t e = 0; e < report.eps.size(); ++e) {
    absl::StrAppend(&out, absl::StrFormat("Sink^%s %.3f | ", EpsName(report.eps[e]),
                                          report.sink[e]));
  }
  absl::StrAppend(&out, absl::StrFormat("first-token mass %.3f", report.first_token_mass_mean));
  if (!report.prefix_mass.empty()) {
    absl::StrAppend(&out, absl::StrFormat(" | prefix mass %.3f", report.prefix_mass_mean));
  }
  if (!report.virtual_mass.empty()) {
    absl::StrAppend(&out, absl::StrFormat(" | virtual mass %.3f", report.virtual_mass_mean));
  }
  if (!report.bias_mass.empty()) {
    absl::StrAppend(&out, absl::StrFormat(" | bias mass %.3f", report.bias_mass_mean));
  }
  absl::StrAppend(&out, absl::StrFormat(" | top1/median %.1f | kurtosis %.2f | max linear in "
                                        "%.3g | entropy %.3f | token0 norm ratio %.2f",
                                        report.max_top1_ratio, report.max_kurtosis,
                                        report.max_linear_input_abs, report.mean_entropy,
                                        report.token0_norm_ratio_max));
  if (!report.gate_mean.empty()) {
    absl::StrAppend(&out, absl::StrFormat(" | gate mean %.3f", report.gate_mean_mean));
  }
  return out;
}

absl::Status StatsWriter::Open(const std::string& run_dir) {
  const std::string dir = run_dir + "/stats";
  SL_RETURN_IF_ERROR(MakeDirs(dir));
  path_ = dir + "/stats.jsonl";
  return writer_.Open(path_);
}

absl::Status StatsWriter::Append(int64_t step, const StatsReport& report) {
  return writer_.AppendLine(StatsLineJson(step, report));
}

}  // namespace sinklab

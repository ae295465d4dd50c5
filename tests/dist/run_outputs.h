// What the data-parallel tests read back from a finished run's directory (header-only: both
// MPI test binaries use it): the weights file and the logged gradient norms.
#ifndef SINKLAB_TESTS_DIST_RUN_OUTPUTS_H_
#define SINKLAB_TESTS_DIST_RUN_OUTPUTS_H_

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "core/json_min.h"
#include "core/safetensors.h"
#include "gtest/gtest.h"

namespace sinklab {

// Largest |a - b| over every tensor of two weight files with the same names.
inline float MaxWeightDifference(const std::string& a_path, const std::string& b_path) {
  absl::StatusOr<SafetensorsFile> a = SafetensorsFile::Read(a_path);
  absl::StatusOr<SafetensorsFile> b = SafetensorsFile::Read(b_path);
  EXPECT_TRUE(a.ok() && b.ok()) << a.status() << b.status();
  if (!a.ok() || !b.ok()) return INFINITY;
  EXPECT_EQ(a->names(), b->names());
  float max_diff = 0;
  for (const std::string& name : a->names()) {
    const SafetensorsEntry x = *a->Get(name), y = *b->Get(name);
    EXPECT_EQ(x.nbytes, y.nbytes) << name;
    const float* xf = static_cast<const float*>(x.data);
    const float* yf = static_cast<const float*>(y.data);
    for (size_t i = 0; i < std::min(x.nbytes, y.nbytes) / sizeof(float); ++i) {
      max_diff = std::max(max_diff, std::fabs(xf[i] - yf[i]));
    }
  }
  return max_diff;
}

// The "grad_norm" of every line of a run's metrics.jsonl (logged every step here). Adam and
// Muon are nearly blind to the scale of the gradient, so the norm is what shows that the
// ranks' gradients are averaged, not summed.
inline std::vector<double> GradNorms(const std::string& run_dir) {
  std::vector<double> norms;
  std::ifstream in(run_dir + "/metrics.jsonl");
  for (std::string line; std::getline(in, line);) {
    absl::StatusOr<JsonValue> record = ParseJson(line);
    EXPECT_TRUE(record.ok()) << record.status();
    if (!record.ok()) continue;
    for (const JsonMember& member : record->members) {
      if (member.key != "grad_norm") continue;
      norms.push_back(std::strtod(member.value.text.c_str(), nullptr));
    }
  }
  return norms;
}

}  // namespace sinklab

#endif  // SINKLAB_TESTS_DIST_RUN_OUTPUTS_H_

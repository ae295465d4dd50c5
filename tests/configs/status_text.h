// Assertions on the text of a Status, printing the whole message when they fail:
//   EXPECT_TRUE(MessageStartsWith(status, "x.textproto:4:9: "));
#ifndef SINKLAB_TESTS_CONFIGS_STATUS_TEXT_H_
#define SINKLAB_TESTS_CONFIGS_STATUS_TEXT_H_

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/string_view.h"
#include "gtest/gtest.h"

namespace sinklab {

inline ::testing::AssertionResult MessageStartsWith(const absl::Status& status,
                                                    absl::string_view prefix) {
  if (!status.ok() && absl::StartsWith(status.message(), prefix)) {
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure()
         << "expected a message starting with \"" << prefix << "\", got: " << status;
}

inline ::testing::AssertionResult MessageContains(const absl::Status& status,
                                                  absl::string_view text) {
  if (!status.ok() && absl::StrContains(status.message(), text)) {
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure()
         << "expected a message containing \"" << text << "\", got: " << status;
}

}  // namespace sinklab

#endif  // SINKLAB_TESTS_CONFIGS_STATUS_TEXT_H_

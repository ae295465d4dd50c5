// Status helpers on absl::Status / absl::StatusOr and CHECK macros.
//
// absl::Status at every boundary that can see bad input (configs, files, flags);
// SL_CHECK only for programmer errors (broken invariants), which abort with file:line.
#ifndef SINKLAB_CORE_STATUS_H_
#define SINKLAB_CORE_STATUS_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace sinklab {

// Prints "file:line: CHECK failed: what" (and detail if any) to stderr and aborts.
[[noreturn]] void CheckFailed(const char* file, int line, const char* what,
                              const std::string& detail);

// Returns `status` with `prefix + ": "` prepended to its message (same code).
absl::Status Annotate(const absl::Status& status, const std::string& prefix);

}  // namespace sinklab

#define SL_CHECK(cond)                                               \
  do {                                                               \
    if (!(cond)) ::sinklab::CheckFailed(__FILE__, __LINE__, #cond, ""); \
  } while (0)

// SL_CHECK_MSG(n > 0, absl::StrCat("n=", n)): the message is built only on failure.
#define SL_CHECK_MSG(cond, msg)                                         \
  do {                                                                  \
    if (!(cond)) ::sinklab::CheckFailed(__FILE__, __LINE__, #cond, (msg)); \
  } while (0)

// Aborts when a Status that must be OK is not (programmer error, e.g. in tests or tools).
#define SL_CHECK_OK(expr)                                                  \
  do {                                                                     \
    const ::absl::Status _sl_st = (expr);                                  \
    if (!_sl_st.ok())                                                      \
      ::sinklab::CheckFailed(__FILE__, __LINE__, #expr, _sl_st.ToString()); \
  } while (0)

#define SL_RETURN_IF_ERROR(expr)             \
  do {                                       \
    const ::absl::Status _sl_st = (expr);    \
    if (!_sl_st.ok()) return _sl_st;         \
  } while (0)

#define SL_STATUS_CONCAT_INNER(a, b) a##b
#define SL_STATUS_CONCAT(a, b) SL_STATUS_CONCAT_INNER(a, b)
// SL_ASSIGN_OR_RETURN(auto x, MakeX()); returns the error status if MakeX fails.
#define SL_ASSIGN_OR_RETURN(lhs, expr) \
  SL_ASSIGN_OR_RETURN_IMPL(SL_STATUS_CONCAT(_sl_statusor_, __LINE__), lhs, expr)
#define SL_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                             \
  if (!tmp.ok()) return tmp.status();            \
  lhs = std::move(tmp).value()

#endif  // SINKLAB_CORE_STATUS_H_

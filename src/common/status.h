// One error model for barge: absl::Status / absl::StatusOr<T>, with context added on the way up.
//
//   absl::StatusOr<Pipeline> p = LoadPipeline(path);
//   RETURN_IF_ERROR(store.CreateRun(run, steps));
//   ASSIGN_OR_RETURN(auto run, store.GetRun(id));
//   return WithContext(status, "run 42, step clean, task 7");
#pragma once

#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace barge {

// Returns `status` with "context: " prepended to its message; OK stays OK.
absl::Status WithContext(const absl::Status& status, std::string_view context);

// The process exit code for a failed command: 2 for bad input (invalid argument, not found,
// failed precondition), 130 for cancellation, 3 for everything else (internal, I/O).
int ExitCodeFor(const absl::Status& status);

}  // namespace barge

#define BARGE_CONCAT_INNER(a, b) a##b
#define BARGE_CONCAT(a, b) BARGE_CONCAT_INNER(a, b)

#define RETURN_IF_ERROR(expr)                           \
  do {                                                  \
    if (absl::Status barge_s = (expr); !barge_s.ok()) { \
      return barge_s;                                   \
    }                                                   \
  } while (0)

#define ASSIGN_OR_RETURN(lhs, expr) \
  ASSIGN_OR_RETURN_IMPL(BARGE_CONCAT(barge_or_, __LINE__), lhs, expr)
#define ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                          \
  if (!tmp.ok()) return tmp.status();         \
  lhs = std::move(tmp).value()

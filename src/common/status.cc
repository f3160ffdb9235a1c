#include "common/status.h"

#include "common/strings.h"

namespace barge {

absl::Status WithContext(const absl::Status& status, std::string_view context) {
  if (status.ok()) return status;
  return absl::Status(status.code(), Cat(context, ": ", status.message()));
}

int ExitCodeFor(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kOk:
      return 0;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kOutOfRange:
    case absl::StatusCode::kPermissionDenied:  // refused credentials: the user's configuration
    case absl::StatusCode::kUnauthenticated:
      return 2;
    case absl::StatusCode::kCancelled:
      return 130;
    default:
      return 3;
  }
}

}  // namespace barge

// Runs a batch of independent jobs on a few threads, stopping at the first failure.
//
//   RETURN_IF_ERROR(ParallelFor(parts, 8, [&](int64_t i) { return UploadPart(i); }));
#pragma once

#include <cstdint>
#include <functional>

#include "absl/status/status.h"

namespace barge {

// Calls job(0), ..., job(n - 1) on up to `parallelism` threads, the caller's among them,
// handing out indexes in order. Once a job fails no new one starts; the running ones finish.
// Returns the first failure, or OK.
absl::Status ParallelFor(int64_t n, int parallelism,
                         const std::function<absl::Status(int64_t)>& job);

}  // namespace barge

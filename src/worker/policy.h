// What happens to a task after an attempt: the failure-class policy, as a pure function.
//
// - success: the task succeeds and this attempt's outputs are committed;
// - infrastructure failure (barge could not set the attempt up): queued again at once, not
//   charged to `retries`, up to `max_infra_failures`;
// - application failure (non-zero exit, signal, timeout): queued again after an exponential
//   backoff with jitter while `retries` allow, then the task fails.
#pragma once

#include <cstdint>
#include <random>

#include "spec/pipeline.h"
#include "store/records.h"
#include "worker/task.h"

namespace barge {

// Delay before retry number `failures` (1-based): base * 2^(failures-1), capped at 10 minutes,
// scaled by a random factor in [0.5, 1).
int64_t RetryDelayMs(int64_t base_ms, int failures, std::mt19937_64& rng);

Completion DecideCompletion(const TaskRecord& task, const Step& step, const AttemptOutcome& outcome,
                            int64_t now_ms, int max_infra_failures, std::mt19937_64& rng);

}  // namespace barge

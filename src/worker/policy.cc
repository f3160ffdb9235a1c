#include "worker/policy.h"

#include <algorithm>
#include <cmath>

#include "common/strings.h"

namespace barge {

int64_t RetryDelayMs(int64_t base_ms, int failures, std::mt19937_64& rng) {
  constexpr int64_t kCapMs = 10 * 60 * 1000;
  double delay = static_cast<double>(base_ms) * std::pow(2.0, std::max(0, failures - 1));
  delay = std::min(delay, static_cast<double>(kCapMs));
  std::uniform_real_distribution<double> jitter(0.5, 1.0);
  return static_cast<int64_t>(delay * jitter(rng));
}

Completion DecideCompletion(const TaskRecord& task, const Step& step, const AttemptOutcome& outcome,
                            int64_t now_ms, int max_infra_failures, std::mt19937_64& rng) {
  Completion c;
  c.key = task.key;
  c.attempt = task.attempt;
  c.worker_id = task.lease_owner;
  c.exit_code = outcome.process.exit_code;
  c.error = outcome.error;
  c.cpu_seconds = outcome.process.cpu_seconds;
  c.max_rss_kb = outcome.process.max_rss_kb;
  c.outputs_json = outcome.outputs_json;
  if (outcome.Succeeded()) {
    c.task_state = state::kSucceeded;
    c.attempt_state = state::kSucceeded;
    return c;
  }
  c.attempt_state = state::kFailed;
  if (outcome.infra_failure) {
    c.failure_class = failure::kInfrastructure;
    c.infra_failure = true;
    c.task_state = task.infra_failures + 1 > max_infra_failures ? state::kFailed : state::kPending;
    if (c.task_state == state::kFailed) {
      c.error =
          Cat(c.error, "; gave up after ", task.infra_failures + 1, " infrastructure failures");
    }
    return c;
  }
  c.charge_retry = true;
  if (outcome.failure_class == failure::kBadInput) {
    // Retrying cannot fix a corrupt or unreadable input: fail now.
    c.failure_class = failure::kBadInput;
    c.task_state = state::kFailed;
    return c;
  }
  // Out of memory is the task's own too, and may pass (a retry on other data, or after a fix).
  c.failure_class = outcome.failure_class == failure::kOutOfMemory ? failure::kOutOfMemory
                                                                   : failure::kApplication;
  int failures = task.app_failures + 1;
  if (failures <= step.retries) {
    c.task_state = state::kPending;
    c.not_before = now_ms + RetryDelayMs(step.retry_delay_ms, failures, rng);
    c.error = Cat(c.error, " (retry ", failures, " of ", step.retries, ")");
  } else {
    c.task_state = state::kFailed;
    if (step.retries > 0) c.error = Cat(c.error, " (after ", failures, " attempts)");
  }
  return c;
}

}  // namespace barge

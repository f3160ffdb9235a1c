// Time as barge sees it: milliseconds since the Unix epoch, behind an interface so that tests
// can advance it by hand (lease expiry, backoff) without sleeping.
//
// Thread-safety: both implementations are safe to call from any thread.
#pragma once

#include <atomic>
#include <cstdint>

namespace barge {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual int64_t NowMs() = 0;
};

// Wall-clock time (CLOCK_REALTIME).
class SystemClock : public Clock {
 public:
  int64_t NowMs() override;
};

// A clock that only moves when told to.
class ManualClock : public Clock {
 public:
  explicit ManualClock(int64_t start_ms) : now_ms_(start_ms) {}
  int64_t NowMs() override { return now_ms_.load(); }
  void AdvanceMs(int64_t ms) { now_ms_ += ms; }

 private:
  std::atomic<int64_t> now_ms_;
};

// Monotonic milliseconds for measuring elapsed time inside one process.
int64_t MonotonicMs();

}  // namespace barge

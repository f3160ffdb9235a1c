// Time as barge sees it: milliseconds since the Unix epoch, behind an interface so that tests
// can advance it by hand (lease expiry, backoff) without sleeping.
//
// Thread-safety: both implementations are safe to call from any thread.
#pragma once

#include <atomic>
#include <cstdint>

namespace barge {

// Monotonic milliseconds for measuring elapsed time inside one process.
int64_t MonotonicMs();

class Clock {
 public:
  virtual ~Clock() = default;
  // Milliseconds since the epoch: times that are stored and shown.
  virtual int64_t NowMs() = 0;
  // Milliseconds on a clock that never goes back, from an arbitrary start: durations.
  virtual int64_t ElapsedMs() { return MonotonicMs(); }
};

// Wall-clock time (CLOCK_REALTIME); durations from CLOCK_MONOTONIC.
class SystemClock : public Clock {
 public:
  int64_t NowMs() override;
};

// A clock that only moves when told to: both readings move together.
class ManualClock : public Clock {
 public:
  explicit ManualClock(int64_t start_ms) : now_ms_(start_ms) {}
  int64_t NowMs() override { return now_ms_.load(); }
  int64_t ElapsedMs() override { return now_ms_.load(); }
  void AdvanceMs(int64_t ms) { now_ms_ += ms; }

 private:
  std::atomic<int64_t> now_ms_;
};

// Paces a costly read repeated to keep a view fresh (a big run's task counts, the queue's load):
// after a read that took d ms, the next is due d / share ms after it started, so such reads take
// at most `share` of the time however large what they read grows. Reads quicker than
// `free_below_ms` are not paced: small views stay exact. Times are a Clock's ElapsedMs().
//
//   if (int64_t t = clock.ElapsedMs(); pacer.Due(t)) {
//     Read();
//     pacer.Took(t, clock.ElapsedMs());
//   }
//
// Thread-safety: none; callers serialise.
class Pacer {
 public:
  explicit Pacer(double share = 0.05, int64_t free_below_ms = 10)
      : share_(share), free_below_ms_(free_below_ms) {}
  bool Due(int64_t now_ms) const { return now_ms >= next_ms_; }
  void Took(int64_t started_ms, int64_t finished_ms) {
    int64_t took = finished_ms - started_ms;
    next_ms_ = took < free_below_ms_ ? 0 : started_ms + static_cast<int64_t>(took / share_);
  }

 private:
  double share_;
  int64_t free_below_ms_;
  int64_t next_ms_ = 0;
};

}  // namespace barge

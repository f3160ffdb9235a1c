// The run page's Gantt chart data: one bar per attempt, or, for runs too large to draw bar by
// bar, bars merged per worker where they touch and share a state.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace barge {

struct TimelineBar {
  std::string step;
  int64_t index = 0;  // -1 for a merged bar
  int attempt = 0;    // 0 for a merged bar
  std::string worker;
  std::string state;
  int64_t start_ms = 0;  // from the run's creation
  int64_t end_ms = 0;
  int64_t count = 1;  // attempts in this bar
};

// Returns `bars` as they are if there are at most `max_bars`. Otherwise merges, per worker,
// consecutive bars of the same state whose gap is at most span_ms / 4000 (under a pixel on any
// screen), widening the gap fourfold until at most `max_bars` remain. Every attempt is counted
// in exactly one bar; bars of different states are never merged, so a failure stays visible.
std::vector<TimelineBar> CoalesceBars(std::vector<TimelineBar> bars, int64_t span_ms,
                                      size_t max_bars);

}  // namespace barge

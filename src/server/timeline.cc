#include "server/timeline.h"

#include <algorithm>
#include <tuple>

namespace barge {
namespace {

std::vector<TimelineBar> MergeWithin(const std::vector<TimelineBar>& sorted, int64_t gap_ms) {
  std::vector<TimelineBar> out;
  for (const TimelineBar& b : sorted) {
    TimelineBar* last = out.empty() ? nullptr : &out.back();
    if (last != nullptr && last->worker == b.worker && last->state == b.state &&
        b.start_ms <= last->end_ms + gap_ms) {
      last->end_ms = std::max(last->end_ms, b.end_ms);
      last->count += b.count;
      if (last->step != b.step) last->step.clear();  // steps differ: the bar names none
      last->index = -1;
      last->attempt = 0;
      continue;
    }
    out.push_back(b);
  }
  return out;
}

}  // namespace

std::vector<TimelineBar> CoalesceBars(std::vector<TimelineBar> bars, int64_t span_ms,
                                      size_t max_bars) {
  if (bars.size() <= max_bars) return bars;
  std::sort(bars.begin(), bars.end(), [](const TimelineBar& a, const TimelineBar& b) {
    return std::tie(a.worker, a.start_ms, a.end_ms) < std::tie(b.worker, b.start_ms, b.end_ms);
  });
  int64_t gap = std::max<int64_t>(1, span_ms / 4000);
  std::vector<TimelineBar> merged = MergeWithin(bars, gap);
  while (merged.size() > max_bars && gap < span_ms) {
    gap *= 4;
    merged = MergeWithin(merged, gap);
  }
  return merged;
}

}  // namespace barge

#include "server/timeline.h"

#include <gtest/gtest.h>

#include <map>

namespace barge {
namespace {

// `n` back-to-back 10 ms attempts spread over `workers` workers, one of them failed.
std::vector<TimelineBar> Busy(int n, int workers, int failed_at) {
  std::vector<TimelineBar> bars;
  for (int i = 0; i < n; ++i) {
    int w = i % workers;
    int64_t start = (i / workers) * 10;
    bars.push_back({.step = i < n / 2 ? "a" : "b",
                    .index = i,
                    .attempt = 1,
                    .worker = "w" + std::to_string(w),
                    .state = i == failed_at ? "failed" : "succeeded",
                    .start_ms = start,
                    .end_ms = start + 9});
  }
  return bars;
}

TEST(CoalesceBars, SmallTimelinesAreLeftBarByBar) {
  std::vector<TimelineBar> bars = Busy(100, 4, -1);
  std::vector<TimelineBar> out = CoalesceBars(bars, 250, 100);
  ASSERT_EQ(out.size(), 100u);
  EXPECT_EQ(out[7].index, 7);
  EXPECT_EQ(out[7].count, 1);
}

TEST(CoalesceBars, LargeTimelinesMergeTouchingBarsButNeverAcrossStates) {
  const int n = 100'000;
  std::vector<TimelineBar> out = CoalesceBars(Busy(n, 8, 50'003), n / 8 * 10, 20'000);
  ASSERT_LE(out.size(), 20'000u);
  int64_t counted = 0;
  std::map<std::string, int64_t> covered;
  int failed = 0;
  for (const TimelineBar& b : out) {
    counted += b.count;
    covered[b.worker] += b.end_ms - b.start_ms;
    if (b.state == "failed") {
      ++failed;
      EXPECT_EQ(b.count, 1);
      EXPECT_EQ(b.index, 50'003);
      EXPECT_EQ(b.step, "b");
    }
  }
  EXPECT_EQ(counted, n) << "every attempt in exactly one bar";
  EXPECT_EQ(failed, 1) << "the failure stays its own bar";
  // Each worker ran 12,500 attempts back to back: merged, its bars cover its whole busy time
  // less the failure's slot on the worker that had it.
  EXPECT_EQ(covered["w0"], 12'500 * 10 - 1);
  // w3 had the failure (50,003 % 8): its bars on either side are separate.
  EXPECT_EQ(out.size(), 10u) << "one bar per worker, and w3's split in three";
}

}  // namespace
}  // namespace barge

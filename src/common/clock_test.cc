#include "common/clock.h"

#include <gtest/gtest.h>

namespace barge {
namespace {

TEST(Pacer, ACostlyReadIsDueAgainOnlyAfterItsShareOfTheTime) {
  Pacer pacer(/*share=*/0.05, /*free_below_ms=*/10);
  EXPECT_TRUE(pacer.Due(1'000)) << "the first read is always due";
  pacer.Took(1'000, 1'300);  // 300 ms: the next is due 6 s after this one started
  EXPECT_FALSE(pacer.Due(1'300));
  EXPECT_FALSE(pacer.Due(6'999));
  EXPECT_TRUE(pacer.Due(7'000));
}

TEST(Pacer, QuickReadsAreNeverPaced) {
  Pacer pacer(/*share=*/0.05, /*free_below_ms=*/10);
  pacer.Took(5'000, 5'009);
  EXPECT_TRUE(pacer.Due(5'009));
  pacer.Took(5'009, 5'019);  // 10 ms: paced, due 200 ms after it started
  EXPECT_FALSE(pacer.Due(5'208));
  EXPECT_TRUE(pacer.Due(5'209));
}

}  // namespace
}  // namespace barge

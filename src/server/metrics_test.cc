#include "server/metrics.h"

#include <gtest/gtest.h>

#include "common/clock.h"
#include "store/state_store.h"
#include "testing/temp_dir.h"

namespace barge {
namespace {

TEST(Metrics, DurationHistogramCountsEachFinishedAttemptOnce) {
  ScopedTempDir dir("metrics");
  ManualClock clock(1'000'000);
  auto store = OpenStateStore((dir.path() / "s.db").string(), &clock).value();
  ASSERT_TRUE(
      store->CreateRun({.id = "r", .pipeline = "p", .created_at = clock.NowMs()}, {{.name = "s"}})
          .ok());
  ASSERT_TRUE(*store->StartStep("r", "s", "[]", 3, {.cpu = 1, .queue = "etl"},
                                [](int64_t i) { return NewTask{.index = i}; }));
  Metrics metrics(*store, *store, *store, /*settle_ms=*/1'000);
  auto claimed = store->Claim({.worker_id = "w", .free_cpu = 3, .max_tasks = 3});
  ASSERT_EQ(claimed->size(), 3u);
  std::string text = *metrics.Render();
  EXPECT_NE(text.find("barge_tasks{queue=\"etl\",state=\"running\"} 3"), std::string::npos) << text;
  EXPECT_NE(text.find("barge_queue_depth{queue=\"etl\"} 0"), std::string::npos);

  clock.AdvanceMs(2'000);  // two attempts of 2 s: one succeeds, one fails
  auto done = [&](const TaskRecord& t, const char* st) {
    return Completion{
        .key = t.key, .attempt = 1, .worker_id = "w", .task_state = st, .attempt_state = st};
  };
  ASSERT_TRUE(
      store->Complete({done((*claimed)[0], state::kSucceeded), done((*claimed)[1], state::kFailed)})
          .ok());
  text = *metrics.Render();
  EXPECT_EQ(text.find("barge_task_duration_seconds_count"), std::string::npos)
      << "not counted until settled";
  clock.AdvanceMs(1'000);
  text = *metrics.Render();
  EXPECT_NE(text.find("barge_task_duration_seconds_bucket{queue=\"etl\",outcome=\"succeeded\","
                      "le=\"1\"} 0"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("barge_task_duration_seconds_bucket{queue=\"etl\",outcome=\"succeeded\","
                      "le=\"5\"} 1"),
            std::string::npos);
  EXPECT_NE(text.find("barge_task_duration_seconds_count{queue=\"etl\",outcome=\"failed\"} 1"),
            std::string::npos);
  EXPECT_NE(text.find("barge_task_duration_seconds_sum{queue=\"etl\",outcome=\"succeeded\"} 2"),
            std::string::npos);
  clock.AdvanceMs(10'000);
  text = *metrics.Render();
  EXPECT_NE(text.find("barge_task_duration_seconds_count{queue=\"etl\",outcome=\"succeeded\"} 1"),
            std::string::npos)
      << "a second scrape does not count the same attempt again";
}

TEST(Metrics, AttemptsThatFinishedBeforeTheServerStartedAreNotCounted) {
  ScopedTempDir dir("metrics");
  ManualClock clock(1'000'000);
  auto store = OpenStateStore((dir.path() / "s.db").string(), &clock).value();
  ASSERT_TRUE(
      store->CreateRun({.id = "r", .pipeline = "p", .created_at = clock.NowMs()}, {{.name = "s"}})
          .ok());
  ASSERT_TRUE(*store->StartStep("r", "s", "[]", 2, {.cpu = 1, .queue = "etl"},
                                [](int64_t i) { return NewTask{.index = i}; }));
  auto claimed = store->Claim({.worker_id = "w", .free_cpu = 2, .max_tasks = 2});
  ASSERT_EQ(claimed->size(), 2u);
  auto done = [&](const TaskRecord& t) {
    return Completion{.key = t.key,
                      .attempt = 1,
                      .worker_id = "w",
                      .task_state = state::kSucceeded,
                      .attempt_state = state::kSucceeded};
  };
  clock.AdvanceMs(1'000);
  ASSERT_TRUE(store->Complete({done((*claimed)[0])}).ok());  // 3 s before the server starts
  clock.AdvanceMs(3'000);
  Metrics metrics(*store, *store, *store, /*settle_ms=*/5'000);
  clock.AdvanceMs(1'000);
  ASSERT_TRUE(store->Complete({done((*claimed)[1])}).ok());  // 1 s after
  clock.AdvanceMs(10'000);
  std::string text = *metrics.Render();
  EXPECT_NE(text.find("barge_task_duration_seconds_count{queue=\"etl\",outcome=\"succeeded\"} 1"),
            std::string::npos)
      << text;
}

TEST(Metrics, WorkerS3CountersAndScheduleLag) {
  ScopedTempDir dir("metrics2");
  ManualClock clock(1'000'000);
  auto store = OpenStateStore((dir.path() / "s.db").string(), &clock).value();
  ASSERT_TRUE(store->RegisterWorker({.id = "w1", .host = "h", .cpu = 2, .queue = "etl"}).ok());
  ASSERT_TRUE(store
                  ->ReportWorkerStats("w1", R"({"s3_requests": 12, "s3_retries": 3, )"
                                            R"("s3_bytes_up": 4096, "s3_bytes_down": 8192})")
                  .ok());
  ASSERT_TRUE(store->PutSchedule({.name = "nightly", .cron = "@daily", .time_zone = "UTC"}).ok());
  clock.AdvanceMs(62'500);  // the slot at 1,060,000 is handled 2.5 s late
  ASSERT_TRUE(*store->RecordFire({"nightly", 1'060'000, "fired", "nightly-x", 0}, 1'000'000));
  Metrics metrics(*store, *store, *store);
  std::string text = *metrics.Render();
  EXPECT_NE(text.find("barge_workers{queue=\"etl\"} 1"), std::string::npos) << text;
  EXPECT_NE(text.find("barge_worker_s3_retries_total{worker=\"w1\"} 3"), std::string::npos);
  EXPECT_NE(text.find("barge_worker_s3_bytes_down_total{worker=\"w1\"} 8192"), std::string::npos);
  EXPECT_NE(text.find("barge_schedule_lag_seconds{schedule=\"nightly\"} 2.5"), std::string::npos)
      << text;
}

}  // namespace
}  // namespace barge

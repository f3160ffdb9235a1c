#include "cli/progress.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include "common/temp_dir.h"
#include "store/forwarding_store.h"

namespace barge {
namespace {

class CountingStore : public ForwardingStateStore {
 public:
  using ForwardingStateStore::ForwardingStateStore;
  absl::StatusOr<std::vector<StepCounts>> CountTasks(const std::string& run_id) override {
    ++counts;
    return ForwardingStateStore::CountTasks(run_id);
  }
  int counts = 0;
};

std::string Read(std::FILE* f) {
  std::fflush(f);
  std::rewind(f);
  std::string out;
  char buf[512];
  while (size_t n = std::fread(buf, 1, sizeof buf, f)) out.append(buf, n);
  return out;
}

TEST(Progress, PlainModeCountsTasksOnlyWhenAStepChangesState) {
  ScopedTempDir dir("progress");
  auto inner = OpenStateStore(dir.path().string() + "/state.db");
  ASSERT_TRUE(inner.ok()) << inner.status();
  CountingStore store(**inner);
  ASSERT_TRUE(store
                  .CreateRun({.id = "r", .pipeline = "p", .params_json = "{}"},
                             {{.name = "s", .position = 0}})
                  .ok());
  ASSERT_TRUE(
      *store.StartStep("r", "s", "[]", 3, {}, [](int64_t i) { return NewTask{.index = i}; }));
  std::FILE* out = std::tmpfile();
  ASSERT_NE(out, nullptr);
  Progress progress(store, "r", out, /*interactive=*/false);
  progress.Update();
  EXPECT_EQ(store.counts, 1);
  for (int i = 0; i < 5; ++i) progress.Update();
  EXPECT_EQ(store.counts, 1) << "nothing changed, so nothing was counted";

  std::vector<TaskRecord> tasks = *store.Claim({.worker_id = "w", .free_cpu = 8, .max_tasks = 3});
  ASSERT_EQ(tasks.size(), 3u);
  std::vector<Completion> done;
  for (const TaskRecord& t : tasks) {
    done.push_back({.key = t.key,
                    .attempt = t.attempt,
                    .worker_id = "w",
                    .task_state = "succeeded",
                    .attempt_state = "succeeded",
                    .exit_code = 0});
  }
  ASSERT_TRUE(store.Complete(done).ok());
  progress.Update();
  EXPECT_EQ(store.counts, 1) << "the step has not changed state yet";
  ASSERT_TRUE(*store.TransitionStep("r", "s", "running", "succeeded"));
  progress.Update();
  EXPECT_EQ(store.counts, 2);
  std::string text = Read(out);
  EXPECT_NE(text.find("step s running (0/3 done)"), std::string::npos) << text;
  EXPECT_NE(text.find("step s succeeded (3/3 done)"), std::string::npos) << text;
  std::fclose(out);
}

TEST(Progress, TheLiveBlockAlwaysCountsForItsFinalDraw) {
  ScopedTempDir dir("progress");
  auto inner = OpenStateStore(dir.path().string() + "/state.db");
  ASSERT_TRUE(inner.ok()) << inner.status();
  CountingStore store(**inner);
  ASSERT_TRUE(store
                  .CreateRun({.id = "r", .pipeline = "p", .params_json = "{}"},
                             {{.name = "s", .position = 0}})
                  .ok());
  ASSERT_TRUE(
      *store.StartStep("r", "s", "[]", 2, {}, [](int64_t i) { return NewTask{.index = i}; }));
  std::FILE* out = std::tmpfile();
  ASSERT_NE(out, nullptr);
  Progress progress(store, "r", out, /*interactive=*/true);
  progress.Update();
  progress.Finish();
  progress.Finish();
  EXPECT_EQ(store.counts, 3);
  EXPECT_NE(Read(out).find("0/2"), std::string::npos);
  std::fclose(out);
}

}  // namespace
}  // namespace barge

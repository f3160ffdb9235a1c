#include "cli/progress.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <memory>
#include <string>

#include "store/forwarding_store.h"
#include "store/state_store.h"
#include "testing/temp_dir.h"

namespace barge {
namespace {

class CountingStore : public ForwardingRunStore {
 public:
  using ForwardingRunStore::ForwardingRunStore;
  absl::StatusOr<std::vector<StepCounts>> CountTasks(const std::string& run_id) override {
    ++counts;
    return ForwardingRunStore::CountTasks(run_id);
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

// A run "r" whose step "s" of `tasks` tasks has started, in a counting store, and a file to draw
// its progress into.
class ProgressTest : public ::testing::Test {
 protected:
  void Start(int tasks) {
    auto opened = OpenStateStore(dir_.path().string() + "/state.db");
    ASSERT_TRUE(opened.ok()) << opened.status();
    inner_ = std::move(*opened);
    store_ = std::make_unique<CountingStore>(*inner_);
    ASSERT_TRUE(store_
                    ->CreateRun({.id = "r", .pipeline = "p", .params_json = "{}"},
                                {{.name = "s", .position = 0}})
                    .ok());
    ASSERT_TRUE(*store_->StartStep("r", "s", "[]", tasks, {},
                                   [](int64_t i) { return NewTask{.index = i}; }));
    out_ = std::tmpfile();
    ASSERT_NE(out_, nullptr);
  }
  void TearDown() override {
    if (out_ != nullptr) std::fclose(out_);
  }

  ScopedTempDir dir_{"progress"};
  std::unique_ptr<StateStore> inner_;
  std::unique_ptr<CountingStore> store_;
  std::FILE* out_ = nullptr;
};

TEST_F(ProgressTest, PlainModeCountsTasksOnlyWhenAStepChangesState) {
  ASSERT_NO_FATAL_FAILURE(Start(3));
  CountingStore& store = *store_;
  Progress progress(store, "r", out_, /*interactive=*/false);
  progress.Update();
  EXPECT_EQ(store.counts, 1);
  for (int i = 0; i < 5; ++i) progress.Update();
  EXPECT_EQ(store.counts, 1) << "nothing changed, so nothing was counted";

  std::vector<TaskRecord> tasks = *inner_->Claim({.worker_id = "w", .free_cpu = 8, .max_tasks = 3});
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
  ASSERT_TRUE(inner_->Complete(done).ok());
  progress.Update();
  EXPECT_EQ(store.counts, 1) << "the step has not changed state yet";
  ASSERT_TRUE(*store.TransitionStep("r", "s", "running", "succeeded"));
  progress.Update();
  EXPECT_EQ(store.counts, 2);
  std::string text = Read(out_);
  EXPECT_NE(text.find("step s running (0/3 done)"), std::string::npos) << text;
  EXPECT_NE(text.find("step s succeeded (3/3 done)"), std::string::npos) << text;
}

TEST_F(ProgressTest, TheLiveBlockAlwaysCountsForItsFinalDraw) {
  ASSERT_NO_FATAL_FAILURE(Start(2));
  Progress progress(*store_, "r", out_, /*interactive=*/true);
  progress.Update();
  progress.Finish();
  progress.Finish();
  EXPECT_EQ(store_->counts, 3);
  EXPECT_NE(Read(out_).find("0/2"), std::string::npos);
}

}  // namespace
}  // namespace barge

// The API's run page on big runs: task counts are paced, yet exact after every state change.
#include "server/api.h"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "common/temp_dir.h"
#include "engine/engine.h"
#include "store/forwarding_store.h"

namespace barge {
namespace {

// Counts CountTasks calls; each takes at least `cost_ms`, as counting a big run does.
class SlowCountStore : public ForwardingStateStore {
 public:
  using ForwardingStateStore::ForwardingStateStore;
  absl::StatusOr<std::vector<StepCounts>> CountTasks(const std::string& run_id) override {
    ++counts;
    std::this_thread::sleep_for(std::chrono::milliseconds(cost_ms));
    return ForwardingStateStore::CountTasks(run_id);
  }
  int counts = 0;
  int cost_ms = 0;
};

class ApiCountsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    inner_ = OpenStateStore((dir_.path() / "s.db").string()).value();
    store_ = std::make_unique<SlowCountStore>(*inner_);
    engine_ = std::make_unique<Engine>(*store_);
    ASSERT_TRUE(store_
                    ->CreateRun({.id = "r", .pipeline = "p", .params_json = "{}"},
                                {{.name = "s", .position = 0}})
                    .ok());
    ASSERT_TRUE(
        *store_->StartStep("r", "s", "[]", 4, {}, [](int64_t i) { return NewTask{.index = i}; }));
  }
  // GET /api/runs/r: the step's {pending, running, succeeded} as the page shows them.
  std::vector<int64_t> Page(Api& api) {
    HttpReply reply = api.Handle({.method = "GET", .path = "/api/runs/r", .authorization = kAuth});
    EXPECT_EQ(reply.status, 200) << reply.body;
    nlohmann::json step = nlohmann::json::parse(reply.body)["steps"][0];
    return {step["pending"].get<int64_t>(), step["running"].get<int64_t>(),
            step["succeeded"].get<int64_t>()};
  }
  void ClaimOne() {
    auto claimed = store_->Claim({.worker_id = "w", .free_cpu = 1, .max_tasks = 1});
    ASSERT_TRUE(claimed.ok()) << claimed.status();
    ASSERT_EQ(claimed->size(), 1u);
  }

  static constexpr char kAuth[] = "Bearer token-0123456789";
  ScopedTempDir dir_{"api"};
  std::unique_ptr<StateStore> inner_;
  std::unique_ptr<SlowCountStore> store_;
  std::unique_ptr<Engine> engine_;
};

TEST_F(ApiCountsTest, AQuickCountIsTakenOnEveryRead) {
  Api api(*store_, *engine_, {.token = "token-0123456789"});
  EXPECT_EQ(Page(api), (std::vector<int64_t>{4, 0, 0}));
  ClaimOne();
  EXPECT_EQ(Page(api), (std::vector<int64_t>{3, 1, 0}));
  EXPECT_EQ(store_->counts, 2);
}

TEST_F(ApiCountsTest, ASlowCountIsPacedButAStateChangeIsCountedAtOnce) {
  store_->cost_ms = 15;  // above the pacer's free threshold (10 ms)
  // With this share, the next count after a 15 ms one is due hours later: only state changes
  // can bring it sooner.
  Api api(*store_, *engine_, {.token = "token-0123456789", .count_share = 1e-6});
  EXPECT_EQ(Page(api), (std::vector<int64_t>{4, 0, 0}));
  ClaimOne();
  EXPECT_EQ(Page(api), (std::vector<int64_t>{4, 0, 0})) << "paced: the last count is served";
  EXPECT_EQ(store_->counts, 1);

  ASSERT_TRUE(*store_->CancelRun("r", "cancelled by the test"));
  std::vector<int64_t> after = Page(api);
  EXPECT_EQ(store_->counts, 2) << "the run changed state: counted again";
  EXPECT_EQ(after[1], 0) << "no task is still running in a cancelled run's counts";
  Page(api);
  EXPECT_EQ(store_->counts, 2);
}

}  // namespace
}  // namespace barge

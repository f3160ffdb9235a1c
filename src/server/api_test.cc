// The API's run page on big runs: task counts are paced, yet exact after every state change.
// Redaction: secrets are masked in raw strings (before JSON escaping) and no slice of a text shows
// a part of one.
#include "server/api.h"

#include <gtest/gtest.h>

#include <chrono>
#include <random>
#include <thread>

#include "common/strings.h"
#include "engine/engine.h"
#include "store/forwarding_store.h"
#include "store/state_store.h"
#include "testing/temp_dir.h"

namespace barge {
namespace {

// Counts CountTasks calls; each takes `cost_ms` on the test's clock, as counting a big run does,
// and nothing else takes any time: pacing is decided by the test, not by the machine's load.
class SlowCountStore : public ForwardingRunStore {
 public:
  SlowCountStore(RunStore& inner, ManualClock& clock) : ForwardingRunStore(inner), clock_(clock) {}
  absl::StatusOr<std::vector<StepCounts>> CountTasks(const std::string& run_id) override {
    ++counts;
    clock_.AdvanceMs(cost_ms);
    return ForwardingRunStore::CountTasks(run_id);
  }
  int counts = 0;
  int cost_ms = 0;

 private:
  ManualClock& clock_;
};

class ApiCountsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    inner_ = OpenStateStore((dir_.path() / "s.db").string()).value();
    store_ = std::make_unique<SlowCountStore>(*inner_, clock_);
    engine_ = std::make_unique<Engine>(*store_, stores_);
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
    auto claimed = inner_->Claim({.worker_id = "w", .free_cpu = 1, .max_tasks = 1});
    ASSERT_TRUE(claimed.ok()) << claimed.status();
    ASSERT_EQ(claimed->size(), 1u);
  }

  static constexpr char kAuth[] = "Bearer token-0123456789";
  ManualClock clock_{1'000'000};
  ScopedTempDir dir_{"api"};
  ObjectStores stores_;
  std::unique_ptr<StateStore> inner_;
  std::unique_ptr<SlowCountStore> store_;
  std::unique_ptr<Engine> engine_;
};

TEST_F(ApiCountsTest, AQuickCountIsTakenOnEveryRead) {
  Api api(*store_, *inner_, *inner_, *engine_, {.token = "token-0123456789", .clock = &clock_});
  EXPECT_EQ(Page(api), (std::vector<int64_t>{4, 0, 0}));
  ClaimOne();
  EXPECT_EQ(Page(api), (std::vector<int64_t>{3, 1, 0}));
  EXPECT_EQ(store_->counts, 2);
}

TEST_F(ApiCountsTest, ASlowCountIsPacedButAStateChangeIsCountedAtOnce) {
  store_->cost_ms = 15;  // above the pacer's free threshold (10 ms)
  // With this share, the next count after a 15 ms one is due hours later: only state changes
  // can bring it sooner.
  Api api(*store_, *inner_, *inner_, *engine_,
          {.token = "token-0123456789", .count_share = 1e-6, .clock = &clock_});
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

TEST_F(ApiCountsTest, ASecretWithQuotesAndBackslashesIsMaskedInEveryJsonReply) {
  const std::string secret = R"(pa"ss\word-42)";
  Redactor redact;
  redact.Add(secret);
  Api api(*store_, *inner_, *inner_, *engine_, {.token = "token-0123456789", .redact = redact});
  ASSERT_TRUE(store_
                  ->CreateRun({.id = "q",
                               .pipeline = "p",
                               .params_json = nlohmann::json({{"password", secret}}).dump()},
                              {{.name = "s", .position = 0}})
                  .ok());
  ASSERT_TRUE(*store_->CancelRun("q", Cat("stopped: ", secret, " was wrong")));
  for (const char* path : {"/api/runs/q", "/api/runs", "/api/runs/q/events"}) {
    HttpReply reply = api.Handle({.method = "GET", .path = path, .authorization = kAuth});
    ASSERT_EQ(reply.status, 200) << path << ": " << reply.body;
    EXPECT_EQ(reply.body.find("word-42"), std::string::npos) << path << ": " << reply.body;
    EXPECT_NE(reply.body.find("[redacted]"), std::string::npos) << path << ": " << reply.body;
  }
  HttpReply run = api.Handle({.method = "GET", .path = "/api/runs/q", .authorization = kAuth});
  EXPECT_EQ(nlohmann::json::parse(run.body)["params"]["password"], "[redacted]");
}

TEST(RedactorTest, SlicesJoinToTheRedactedTextAndNeverShowASecretByte) {
  Redactor redact;
  redact.Add("abab");      // overlaps itself
  redact.Add("ba\"b\\x");  // quote and backslash
  redact.Add("xyz0");
  std::mt19937 rng(7);
  const std::string alphabet = "abxyz0\"\\ ";
  for (int round = 0; round < 300; ++round) {
    std::string text;
    for (int i = 0, n = 1 + static_cast<int>(rng() % 40); i < n; ++i) {
      text += alphabet[rng() % alphabet.size()];
    }
    const std::string whole = redact(text);
    for (const char* secret : {"abab", "ba\"b\\x", "xyz0"}) {
      EXPECT_EQ(whole.find(secret), std::string::npos) << text << " -> " << whole;
    }
    const int64_t size = static_cast<int64_t>(text.size());
    const int64_t margin = redact.MaxLength();
    // Slices of every width, each read with the margin the contract asks for, join to exactly
    // the whole text's redaction: none shows a byte that the whole hides.
    for (int64_t width = 1; width <= 9; ++width) {
      std::string joined;
      for (int64_t from = 0; from < size; from += width) {
        int64_t to = std::min(size, from + width);
        int64_t start = std::max<int64_t>(0, from - margin);
        std::string window = text.substr(start, std::min(size, to + margin) - start);
        std::string slice = redact.Slice(window, start, from, to);
        joined += slice;
      }
      EXPECT_EQ(joined, whole) << "text '" << text << "', width " << width;
    }
  }
  EXPECT_EQ(redact("1abababx2"), "1[redacted]x2") << "overlapping occurrences: one mask";
  EXPECT_EQ(redact("xyz0abab"), "[redacted]") << "touching occurrences: one mask";
}

TEST(RedactorTest, AGrowingTextHoldsBackWhatCouldStartASecret) {
  Redactor redact;
  redact.Add("SECRET-KEY");
  EXPECT_EQ(redact.PartialSecretAtEnd("log line SECR"), 4);
  EXPECT_EQ(redact.PartialSecretAtEnd("log line SECRET-KE"), 9);
  EXPECT_EQ(redact.PartialSecretAtEnd("log line S"), 1);
  EXPECT_EQ(redact.PartialSecretAtEnd("log line\n"), 0);
  EXPECT_EQ(redact.PartialSecretAtEnd("SECRET-KEY"), 0) << "a whole secret is masked, not held";
  EXPECT_EQ(Redactor().PartialSecretAtEnd("anything"), 0);
}

TEST(RedactorTest, ALiveSliceEndingInsideAPartialSecretStopsBeforeIt) {
  Redactor redact;
  redact.Add("SECRET-KEY");
  const std::string log = "log line SECR";  // 13 bytes; the secret begins at 9, still being written
  const int64_t size = static_cast<int64_t>(log.size());
  std::string last = log.substr(size - (redact.MaxLength() - 1));
  EXPECT_EQ(redact.LiveEnd(last, size, 0, size), 9) << "a slice to the end";
  EXPECT_EQ(redact.LiveEnd(last, size, 0, 11), 9) << "a slice ending two bytes before the end";
  EXPECT_EQ(redact.LiveEnd(last, size, 10, 12), 10) << "a slice inside the partial secret is empty";
  EXPECT_EQ(redact.LiveEnd(last, size, 0, 8), 8) << "a slice before it is untouched";
  EXPECT_EQ(redact.LiveEnd("log line\n", 9, 0, 9), 9) << "nothing partial: nothing held back";
}

}  // namespace
}  // namespace barge

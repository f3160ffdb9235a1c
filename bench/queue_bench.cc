// The queue alone: W workers, each with its own state store connection, claim tasks in batches
// and complete them until none are left, with no processes spawned. Prints claims+completions
// per second. The baseline side of bench/queue.sh.
//   barge_queue_bench STATE_URL WORKERS TASKS BATCH
#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "engine/engine.h"
#include "store/state_store.h"

int main(int argc, char** argv) {
  using namespace barge;
  if (argc != 5) {
    std::fprintf(stderr, "usage: %s STATE_URL WORKERS TASKS BATCH\n", argv[0]);
    return 2;
  }
  std::string url = argv[1];
  int workers = std::stoi(argv[2]);
  int64_t tasks = std::stoll(argv[3]);
  int batch = std::stoi(argv[4]);
  auto setup = OpenStateStore(url);
  if (!setup.ok()) {
    std::fprintf(stderr, "%s\n", std::string(setup.status().message()).c_str());
    return 1;
  }
  RunRecord run{.id = NewRunId((*setup)->NowMs()),
                .pipeline = "queue-bench",
                .spec_path = "-",
                .spec_source = "-",
                .params_json = "{}",
                .root = "/tmp",
                .created_at = (*setup)->NowMs()};
  if (!(*setup)->CreateRun(run, {{.name = "noop", .position = 0}}).ok()) return 1;
  auto started = (*setup)->StartStep(run.id, "noop", "[]", tasks, {},
                                     [](int64_t i) { return NewTask{.index = i}; });
  if (!started.ok()) return 1;

  // Workers connect first, as the peers' are started before their clocks start: this measures
  // the queue, not connection set-up (about 25 ms per PostgreSQL session here).
  std::vector<std::unique_ptr<StateStore>> stores;
  for (int w = 0; w < workers; ++w) {
    auto store = OpenStateStore(url);
    if (!store.ok()) {
      std::fprintf(stderr, "%s\n", std::string(store.status().message()).c_str());
      return 1;
    }
    stores.push_back(std::move(*store));
  }
  std::atomic<int64_t> done{0};
  std::atomic<bool> failed{false};
  auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (int w = 0; w < workers; ++w) {
    threads.emplace_back([&, w] {
      StateStore* store = stores[w].get();
      std::string id = "bench-" + std::to_string(w);
      for (;;) {
        auto claimed = store->Claim({.worker_id = id,
                                     .run_id = run.id,
                                     .free_cpu = 1e9,
                                     .max_tasks = batch,
                                     .lease_ms = 60'000});
        if (!claimed.ok()) {
          std::fprintf(stderr, "%s\n", std::string(claimed.status().message()).c_str());
          failed = true;
          return;
        }
        if (claimed->empty()) return;
        std::vector<Completion> completions;
        for (const TaskRecord& t : *claimed) {
          completions.push_back({.key = t.key,
                                 .attempt = t.attempt,
                                 .worker_id = id,
                                 .task_state = "succeeded",
                                 .attempt_state = "succeeded",
                                 .exit_code = 0});
        }
        if (auto s = store->Complete(completions); !s.ok()) {
          std::fprintf(stderr, "%s\n", std::string(s.status().message()).c_str());
          failed = true;
          return;
        }
        done += static_cast<int64_t>(claimed->size());
      }
    });
  }
  for (std::thread& t : threads) t.join();
  std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
  if (failed || done != tasks) {
    std::fprintf(stderr, "failed: %lld of %lld done\n", static_cast<long long>(done.load()),
                 static_cast<long long>(tasks));
    return 1;
  }
  std::printf("%.3f %.0f\n", took.count(), static_cast<double>(tasks) / took.count());
  return 0;
}

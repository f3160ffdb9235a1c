// One fleet worker's queue protocol without the processes: claims tasks of RUN in batches from
// the state store at URL and completes them until none are left, appending "index attempt" for
// every task it was leased to OUT. The contention test runs eight of these at once.
//   barge_queue_drainer URL RUN WORKER_ID BATCH OUT
#include <cstdio>
#include <string>

#include "store/state_store.h"

int main(int argc, char** argv) {
  using namespace barge;
  if (argc != 6) {
    std::fprintf(stderr, "usage: %s URL RUN WORKER_ID BATCH OUT\n", argv[0]);
    return 2;
  }
  std::string id = argv[3];  // RUN (argv[2]) is created by the test; this claims any task
  int batch = std::stoi(argv[4]);
  FILE* out = std::fopen(argv[5], "w");
  absl::StatusOr<std::unique_ptr<StateStore>> store = OpenStateStore(argv[1]);
  if (out == nullptr || !store.ok()) {
    std::fprintf(stderr, "drainer %s: %s\n", id.c_str(),
                 store.ok() ? "cannot open OUT" : std::string(store.status().message()).c_str());
    return 1;
  }
  for (;;) {
    absl::StatusOr<std::vector<TaskRecord>> claimed =
        (*store)->Claim({.worker_id = id,
                         .free_cpu = 1e9,
                         .max_tasks = batch,
                         .lease_ms = 600'000,
                         .queue = "default",
                         .accepts = std::vector<std::string>{""}});
    if (!claimed.ok()) {
      std::fprintf(stderr, "drainer %s: claim: %s\n", id.c_str(),
                   std::string(claimed.status().message()).c_str());
      return 1;
    }
    if (claimed->empty()) break;
    std::vector<Completion> done;
    for (const TaskRecord& t : *claimed) {
      std::fprintf(out, "%lld %d\n", static_cast<long long>(t.key.index), t.attempt);
      done.push_back({.key = t.key,
                      .attempt = t.attempt,
                      .worker_id = id,
                      .task_state = "succeeded",
                      .attempt_state = "succeeded",
                      .exit_code = 0});
    }
    absl::StatusOr<std::vector<bool>> accepted = (*store)->Complete(done);
    if (!accepted.ok()) {
      std::fprintf(stderr, "drainer %s: complete: %s\n", id.c_str(),
                   std::string(accepted.status().message()).c_str());
      return 1;
    }
    for (bool a : *accepted) {
      if (!a) {
        std::fprintf(stderr, "drainer %s: a completion was fenced\n", id.c_str());
        return 1;
      }
    }
  }
  return std::fclose(out) == 0 ? 0 : 1;
}

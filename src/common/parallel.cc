#include "common/parallel.h"

#include <algorithm>
#include <atomic>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"

namespace barge {

absl::Status ParallelFor(int64_t n, int parallelism,
                         const std::function<absl::Status(int64_t)>& job) {
  std::atomic<int64_t> next{0};
  absl::Mutex mu;
  absl::Status failed;
  auto worker = [&] {
    for (int64_t i; (i = next++) < n;) {
      absl::Status s = job(i);
      if (!s.ok()) {
        absl::MutexLock lock(&mu);
        if (failed.ok()) failed = std::move(s);
        next = n;  // start nothing more
      }
    }
  };
  std::vector<std::thread> threads;
  int64_t threads_wanted = std::min<int64_t>(n, std::max(parallelism, 1));
  for (int64_t t = 1; t < threads_wanted; ++t) threads.emplace_back(worker);
  worker();
  for (std::thread& t : threads) t.join();
  return failed;
}

}  // namespace barge

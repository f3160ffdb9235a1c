#include "worker/live_log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <vector>

#include "common/units.h"
#include "objstore/data_root.h"

namespace barge {

int64_t LiveLogIntervalMs() {
  const char* text = std::getenv("BARGE_LIVE_LOG_INTERVAL");
  if (text == nullptr || *text == '\0') return 2'000;
  absl::StatusOr<int64_t> ms = ParseDurationMs(text);
  return ms.ok() ? *ms : 2'000;
}

LiveLog::LiveLog(ObjectStore& store, std::string log_key, std::string local_path, int64_t every_ms)
    : store_(store),
      log_key_(std::move(log_key)),
      local_path_(std::move(local_path)),
      every_ms_(every_ms) {
  if (every_ms_ > 0) thread_ = std::thread([this] { Loop(); });
}

LiveLog::~LiveLog() { Stop(); }

void LiveLog::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

void LiveLog::Loop() {
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      auto stopping = [this] {
        mu_.AssertReaderHeld();
        return stop_;
      };
      if (mu_.AwaitWithTimeout(absl::Condition(&stopping), absl::Milliseconds(every_ms_))) return;
    }
    ShipNewBytes();
  }
}

void LiveLog::ShipNewBytes() {
  // At most this much per piece, so a task that floods its log costs bounded memory here.
  constexpr int64_t kMaxPiece = 8 << 20;
  int fd = ::open(local_path_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;  // nothing written yet
  std::vector<char> buf;
  for (;;) {
    // Sized to what is new (most ticks: nothing, and no allocation).
    struct stat st {};
    if (::fstat(fd, &st) != 0 || st.st_size <= shipped_) break;
    buf.resize(static_cast<size_t>(std::min<int64_t>(st.st_size - shipped_, kMaxPiece)));
    ssize_t n = ::pread(fd, buf.data(), buf.size(), shipped_);
    if (n <= 0) break;
    // A failed upload is tried again next interval from the same offset: the final log is
    // what counts, this is only a view of it.
    if (!store_
             .Put(DataRoot::LiveLogPieceKey(log_key_, shipped_),
                  std::string_view(buf.data(), static_cast<size_t>(n)))
             .ok()) {
      break;
    }
    shipped_ += n;
    any_piece_ = true;
  }
  ::close(fd);
}

void LiveLog::Discard() {
  Stop();
  if (!any_piece_) return;
  absl::StatusOr<std::vector<ObjectInfo>> pieces = store_.List(DataRoot::LiveLogPrefix(log_key_));
  if (!pieces.ok()) return;
  std::vector<std::string> keys;
  for (const ObjectInfo& p : *pieces) keys.push_back(p.key);
  if (!keys.empty()) (void)store_.Delete(keys);
}

}  // namespace barge

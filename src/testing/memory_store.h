// MemoryObjectStore: an ObjectStore held in memory, for tests of what reads and writes through
// the interface (staging, globbing, data roots) without a disk or an S3 server; a fault hook
// makes any call fail, as a flaky or broken store would.
//
//   auto store = std::make_unique<MemoryObjectStore>("s3://bucket");
//   store->set_fault([](std::string_view method, std::string_view key) {
//     return method == "Head" ? absl::UnavailableError("503 SlowDown") : absl::OkStatus();
//   });
//
// Thread-safety: every method may be called from any thread.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>

#include "absl/synchronization/mutex.h"
#include "objstore/object_store.h"

namespace barge {

class MemoryObjectStore : public ObjectStore {
 public:
  // Called first by every method with its name ("Get", "Head", "List", ...) and key (the prefix
  // for List, "" for Delete); a status other than OK is returned instead of doing the call.
  using Fault = std::function<absl::Status(std::string_view method, std::string_view key)>;

  explicit MemoryObjectStore(std::string url) : url_(std::move(url)) {}

  void set_fault(Fault fault);
  // How many calls of `method` were made (failed ones included).
  int64_t calls(std::string_view method) const;

  std::string Url(std::string_view key = {}) const override;
  absl::StatusOr<std::string> Get(std::string_view key,
                                  std::optional<ByteRange> range = std::nullopt) override;
  absl::StatusOr<ObjectInfo> GetToFile(std::string_view key, const std::string& path) override;
  absl::StatusOr<ObjectInfo> Put(std::string_view key, std::string_view data) override;
  absl::StatusOr<ObjectInfo> PutFile(std::string_view key, const std::string& path) override;
  absl::StatusOr<bool> PutIfAbsent(std::string_view key, std::string_view data) override;
  absl::StatusOr<ObjectInfo> Head(std::string_view key) override;
  absl::StatusOr<std::vector<ObjectInfo>> List(std::string_view prefix) override;
  absl::Status Delete(const std::vector<std::string>& keys) override;

 private:
  struct Object {
    std::string data;
    int64_t version = 0;  // the ETag: changes with every write
  };
  // Counts the call, then checks the key (unless it is a prefix) and asks the fault hook.
  absl::Status Enter(std::string_view method, std::string_view key, bool check_key = true);
  ObjectInfo InfoLocked(const std::string& key, const Object& o) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);
  ObjectInfo PutLocked(std::string_view key, std::string_view data)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string url_;
  mutable absl::Mutex mu_;
  Fault fault_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int64_t, std::less<>> calls_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, Object, std::less<>> objects_ ABSL_GUARDED_BY(mu_);
  int64_t versions_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace barge

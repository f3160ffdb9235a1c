#include "objstore/object_stores.h"

#include <utility>

namespace barge {

ObjectStores::ObjectStores() : ObjectStores(&OpenObjectStore) {}

ObjectStores::ObjectStores(Opener open) : open_(std::move(open)) {}

absl::StatusOr<ObjectStore*> ObjectStores::Open(const std::string& url) {
  absl::MutexLock lock(&mu_);
  auto it = stores_.find(url);
  if (it != stores_.end()) return it->second.get();
  // Opened under the lock: two tasks asking for a new bucket at once get one store.
  absl::StatusOr<std::unique_ptr<ObjectStore>> opened = open_(url);
  if (!opened.ok()) return opened.status();
  return stores_.emplace(url, *std::move(opened)).first->second.get();
}

std::map<std::string, int64_t> ObjectStores::Counters() const {
  absl::MutexLock lock(&mu_);
  std::map<std::string, int64_t> total;
  for (const auto& [url, store] : stores_) {
    for (const auto& [name, value] : store->Counters()) total[name] += value;
  }
  return total;
}

}  // namespace barge

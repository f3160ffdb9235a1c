#include "testing/memory_store.h"

#include "common/fs.h"
#include "common/status.h"
#include "common/strings.h"

namespace barge {

void MemoryObjectStore::set_fault(Fault fault) {
  absl::MutexLock lock(&mu_);
  fault_ = std::move(fault);
}

int64_t MemoryObjectStore::calls(std::string_view method) const {
  absl::MutexLock lock(&mu_);
  auto it = calls_.find(method);
  return it == calls_.end() ? 0 : it->second;
}

absl::Status MemoryObjectStore::Enter(std::string_view method, std::string_view key,
                                      bool check_key) {
  Fault fault;
  {
    absl::MutexLock lock(&mu_);
    ++calls_[std::string(method)];
    fault = fault_;
  }
  if (check_key) RETURN_IF_ERROR(CheckKey(key));
  return fault ? fault(method, key) : absl::OkStatus();
}

ObjectInfo MemoryObjectStore::InfoLocked(const std::string& key, const Object& o) const {
  return {.key = key, .size = static_cast<int64_t>(o.data.size()), .etag = Cat("v", o.version)};
}

ObjectInfo MemoryObjectStore::PutLocked(std::string_view key, std::string_view data) {
  auto [it, unused] =
      objects_.insert_or_assign(std::string(key), Object{std::string(data), ++versions_});
  return InfoLocked(it->first, it->second);
}

std::string MemoryObjectStore::Url(std::string_view key) const {
  return key.empty() ? url_ : Cat(url_, "/", key);
}

absl::StatusOr<std::string> MemoryObjectStore::Get(std::string_view key,
                                                   std::optional<ByteRange> range) {
  RETURN_IF_ERROR(Enter("Get", key));
  absl::MutexLock lock(&mu_);
  auto it = objects_.find(key);
  if (it == objects_.end()) return absl::NotFoundError(Cat("no object ", Url(key)));
  const std::string& data = it->second.data;
  if (!range) return data;
  size_t offset = std::min(data.size(), static_cast<size_t>(range->offset));
  return data.substr(offset,
                     range->length < 0 ? std::string::npos : static_cast<size_t>(range->length));
}

absl::StatusOr<ObjectInfo> MemoryObjectStore::GetToFile(std::string_view key,
                                                        const std::string& path) {
  RETURN_IF_ERROR(Enter("GetToFile", key));
  absl::MutexLock lock(&mu_);
  auto it = objects_.find(key);
  if (it == objects_.end()) return absl::NotFoundError(Cat("no object ", Url(key)));
  RETURN_IF_ERROR(WriteFile(path, it->second.data));
  return InfoLocked(it->first, it->second);
}

absl::StatusOr<ObjectInfo> MemoryObjectStore::Put(std::string_view key, std::string_view data) {
  RETURN_IF_ERROR(Enter("Put", key));
  absl::MutexLock lock(&mu_);
  return PutLocked(key, data);
}

absl::StatusOr<ObjectInfo> MemoryObjectStore::PutFile(std::string_view key,
                                                      const std::string& path) {
  RETURN_IF_ERROR(Enter("PutFile", key));
  ASSIGN_OR_RETURN(std::string data, ReadFile(path));
  absl::MutexLock lock(&mu_);
  return PutLocked(key, data);
}

absl::StatusOr<bool> MemoryObjectStore::PutIfAbsent(std::string_view key, std::string_view data) {
  RETURN_IF_ERROR(Enter("PutIfAbsent", key));
  absl::MutexLock lock(&mu_);
  if (objects_.contains(key)) return false;
  PutLocked(key, data);
  return true;
}

absl::StatusOr<ObjectInfo> MemoryObjectStore::Head(std::string_view key) {
  RETURN_IF_ERROR(Enter("Head", key));
  absl::MutexLock lock(&mu_);
  auto it = objects_.find(key);
  if (it == objects_.end()) return absl::NotFoundError(Cat("no object ", Url(key)));
  return InfoLocked(it->first, it->second);
}

absl::StatusOr<std::vector<ObjectInfo>> MemoryObjectStore::List(std::string_view prefix) {
  RETURN_IF_ERROR(Enter("List", prefix, /*check_key=*/false));
  absl::MutexLock lock(&mu_);
  std::vector<ObjectInfo> out;
  for (auto it = objects_.lower_bound(prefix);
       it != objects_.end() && it->first.starts_with(prefix); ++it) {
    out.push_back(InfoLocked(it->first, it->second));
  }
  return out;
}

absl::Status MemoryObjectStore::Delete(const std::vector<std::string>& keys) {
  RETURN_IF_ERROR(Enter("Delete", "", /*check_key=*/false));
  for (const std::string& key : keys) RETURN_IF_ERROR(CheckKey(key));
  absl::MutexLock lock(&mu_);
  for (const std::string& key : keys) objects_.erase(key);
  return absl::OkStatus();
}

}  // namespace barge

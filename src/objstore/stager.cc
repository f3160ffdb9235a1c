#include "objstore/stager.h"

#include <unistd.h>

#include <filesystem>

#include "common/fs.h"
#include "common/parallel.h"
#include "common/status.h"
#include "common/strings.h"

namespace barge {

InputCache::InputCache(std::string dir, int64_t max_bytes)
    : dir_(std::move(dir)), max_bytes_(max_bytes) {}

absl::StatusOr<std::string> InputCache::Fetch(ObjectStore& store, const std::string& key) {
  RETURN_IF_ERROR(CheckKey(key));
  std::string id = store.Url(key);
  // Ask for the current ETag first: a cached copy is only good for the content it was.
  ASSIGN_OR_RETURN(ObjectInfo info, store.Head(key));
  std::shared_future<absl::StatusOr<std::string>> pending;
  std::promise<absl::StatusOr<std::string>> mine;
  bool download = false;
  {
    absl::MutexLock lock(&mu_);
    auto it = entries_.find(id);
    if (it != entries_.end() && it->second.etag == info.etag) {
      lru_.splice(lru_.begin(), lru_, it->second.lru);
      ++hits_;
      return it->second.path;
    }
    auto flight = in_flight_.find(id);
    if (flight != in_flight_.end()) {
      pending = flight->second;
    } else {
      pending = mine.get_future().share();
      in_flight_[id] = pending;
      download = true;
    }
  }
  if (!download) return pending.get();

  std::string path;
  {
    absl::MutexLock lock(&mu_);
    path = Cat(dir_, "/", ++serial_, "-", std::filesystem::path(key).filename().string());
  }
  absl::StatusOr<ObjectInfo> got =
      MakeDirs(dir_).ok() ? store.GetToFile(key, path)
                          : absl::StatusOr<ObjectInfo>(
                                absl::InternalError(Cat("cannot create the input cache ", dir_)));
  absl::StatusOr<std::string> result =
      got.ok() ? absl::StatusOr<std::string>(path) : absl::StatusOr<std::string>(got.status());
  {
    absl::MutexLock lock(&mu_);
    in_flight_.erase(id);
    if (got.ok()) {
      ++downloads_;
      auto old = entries_.find(id);
      if (old != entries_.end()) {
        ::unlink(old->second.path.c_str());
        bytes_ -= old->second.size;
        lru_.erase(old->second.lru);
        entries_.erase(old);
      }
      lru_.push_front(id);
      entries_[id] = Entry{path, got->etag, got->size, lru_.begin()};
      bytes_ += got->size;
      EvictLocked();
    }
  }
  mine.set_value(result);
  return result;
}

void InputCache::EvictLocked() {
  // Keep at least the newest entry, even if it alone is over the budget.
  while (bytes_ > max_bytes_ && lru_.size() > 1) {
    std::string victim = lru_.back();
    lru_.pop_back();
    auto it = entries_.find(victim);
    ::unlink(it->second.path.c_str());
    bytes_ -= it->second.size;
    entries_.erase(it);
  }
}

namespace {

// An input that is staged: its object and where its copy goes.
struct StagedObject {
  std::string store_url, key, path;
};

// nullopt for a local path: the one place staging tells a local input from an object.
absl::StatusOr<std::optional<StagedObject>> StagedObjectOf(const std::string& input,
                                                           const std::string& into) {
  if (!IsObjectStoreUrl(input)) return std::nullopt;
  ASSIGN_OR_RETURN(auto split, SplitObjectUrl(input));
  auto& [store_url, key] = split;
  std::string bucket = store_url.substr(store_url.find("://") + 3);
  std::string path = Cat(into, "/", bucket, "/", key);
  return StagedObject{std::move(store_url), std::move(key), std::move(path)};
}

}  // namespace

absl::StatusOr<std::optional<std::string>> StagedPath(const std::string& input,
                                                      const std::string& into) {
  ASSIGN_OR_RETURN(std::optional<StagedObject> object, StagedObjectOf(input, into));
  if (!object) return std::nullopt;
  return std::move(object->path);
}

absl::StatusOr<std::vector<std::string>> StageInputs(const std::vector<std::string>& inputs,
                                                     const std::string& into, InputCache& cache,
                                                     ObjectStores& stores, int parallelism) {
  std::vector<std::string> local(inputs.size());
  struct Job {
    size_t index;
    ObjectStore* store;
    std::string key;
  };
  std::vector<Job> jobs;
  for (size_t i = 0; i < inputs.size(); ++i) {
    ASSIGN_OR_RETURN(std::optional<StagedObject> object, StagedObjectOf(inputs[i], into));
    if (!object) {
      local[i] = inputs[i];
      continue;
    }
    ASSIGN_OR_RETURN(ObjectStore * store, stores.Open(object->store_url));
    local[i] = std::move(object->path);
    jobs.push_back({i, store, std::move(object->key)});
  }
  RETURN_IF_ERROR(
      ParallelFor(static_cast<int64_t>(jobs.size()), parallelism, [&](int64_t j) -> absl::Status {
        const Job& job = jobs[static_cast<size_t>(j)];
        const std::string& dest = local[job.index];
        absl::StatusOr<std::string> cached = cache.Fetch(*job.store, job.key);
        if (!cached.ok()) {
          return WithContext(cached.status(), Cat("staging ", inputs[job.index]));
        }
        RETURN_IF_ERROR(MakeDirs(std::filesystem::path(dest).parent_path().string()));
        std::error_code ec;
        std::filesystem::remove(dest, ec);
        // A hard link costs nothing and survives the cache evicting its copy.
        if (::link(cached->c_str(), dest.c_str()) != 0) {
          std::filesystem::copy_file(*cached, dest, ec);
          if (ec) {
            return absl::InternalError(Cat("copying ", *cached, " to ", dest, ": ", ec.message()));
          }
        }
        return absl::OkStatus();
      }));
  return local;
}

}  // namespace barge

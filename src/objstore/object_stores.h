// ObjectStores: the object stores one command reads and writes, each opened once per URL and
// kept while the command runs, so that every task of a worker reuses its connections and
// credentials. Made at the top of each command (cli/context.cc) and passed down by reference, as
// LevelDB passes its Env; nothing in barge keeps a store of its own beyond a call.
//
//   ObjectStores stores;  // opens with OpenObjectStore()
//   ASSIGN_OR_RETURN(ObjectStore * raw, stores.Open("s3://raw"));
//   ASSIGN_OR_RETURN(std::vector<ObjectInfo> objects, raw->List("events/"));
//
// Tests pass an opener that returns a fake or fault-injecting store for any URL:
//
//   ObjectStores stores([&](const std::string& url) { return MakeFake(url); });
//
// Thread-safety: every method may be called from any thread; the stores themselves are as
// thread-safe as their implementations (both of barge's are).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "objstore/object_store.h"

namespace barge {

class ObjectStores {
 public:
  using Opener =
      std::function<absl::StatusOr<std::unique_ptr<ObjectStore>>(const std::string& url)>;

  // Opens stores with OpenObjectStore().
  ObjectStores();
  // Opens stores with `open`, called at most once per URL that it opens successfully.
  explicit ObjectStores(Opener open);
  ObjectStores(const ObjectStores&) = delete;
  ObjectStores& operator=(const ObjectStores&) = delete;

  // The store of `url` (a root URL such as "s3://bucket[/prefix]"), opened on first use and owned
  // by this object. A failed open is not kept: the next call tries again.
  absl::StatusOr<ObjectStore*> Open(const std::string& url);

  // The sum of Counters() over every store opened so far: what a worker reports.
  std::map<std::string, int64_t> Counters() const;

 private:
  const Opener open_;
  mutable absl::Mutex mu_;
  std::map<std::string, std::unique_ptr<ObjectStore>> stores_ ABSL_GUARDED_BY(mu_);
};

}  // namespace barge

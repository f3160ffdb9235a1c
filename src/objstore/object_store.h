// ObjectStore: the shared disk of a deployment, a local directory or an S3 bucket, behind one
// interface with one contract (objstore/object_store_test.cc runs it against both).
//
//   ASSIGN_OR_RETURN(std::unique_ptr<ObjectStore> store, OpenObjectStore("s3://bucket/prefix"));
//   RETURN_IF_ERROR(store->Put("runs/r1/out.csv", data).status());
//   ASSIGN_OR_RETURN(std::vector<ObjectInfo> objects, store->List("runs/r1/"));
//
// Keys are relative to the store's root ('/'-separated, no leading '/', no "." or ".."
// segments); every method checks them and refuses others as InvalidArgument. Errors: NotFound for
// a missing object, Unavailable for failures worth retrying later (the S3 client has already
// retried them), InvalidArgument for bad keys, anything else for the rest.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace barge {

struct ObjectInfo {
  std::string key;  // relative to the store's root
  int64_t size = 0;
  std::string etag;  // opaque; changes when the content does
};

struct ByteRange {
  int64_t offset = 0;
  int64_t length = -1;  // -1: to the end
};

class ObjectStore {
 public:
  virtual ~ObjectStore() = default;

  // "file:///abs/dir" or "s3://bucket/prefix": where keys live, for messages and manifests.
  virtual std::string Url(std::string_view key = {}) const = 0;

  // Traffic counters since the store was opened, by name (e.g. "s3_retries"); none by default.
  virtual std::map<std::string, int64_t> Counters() const { return {}; }

  // The whole object, or a byte range of it.
  virtual absl::StatusOr<std::string> Get(std::string_view key,
                                          std::optional<ByteRange> range = std::nullopt) = 0;
  // Downloads into a local file (created or truncated), verifying its size.
  virtual absl::StatusOr<ObjectInfo> GetToFile(std::string_view key, const std::string& path) = 0;
  // Writes an object whole: readers see the old content or the new, never a part.
  virtual absl::StatusOr<ObjectInfo> Put(std::string_view key, std::string_view data) = 0;
  virtual absl::StatusOr<ObjectInfo> PutFile(std::string_view key, const std::string& path) = 0;
  // Creates the object only if no object has the key: true if this call created it, false if
  // one existed (and is left alone). Unimplemented where the store cannot do it atomically.
  virtual absl::StatusOr<bool> PutIfAbsent(std::string_view key, std::string_view data) = 0;
  virtual absl::StatusOr<ObjectInfo> Head(std::string_view key) = 0;
  // Every object whose key starts with `prefix`, in key order (all pages).
  virtual absl::StatusOr<std::vector<ObjectInfo>> List(std::string_view prefix) = 0;
  // Deletes the objects; keys that do not exist are not an error.
  virtual absl::Status Delete(const std::vector<std::string>& keys) = 0;
};

// Checks a key: non-empty, relative, no empty, "." or ".." segments, no NUL. A backslash is an
// ordinary character, as in a Linux file name (S3 gets it as %5C), so that an output name that
// works on a local root works on S3 too.
absl::Status CheckKey(std::string_view key);

// Whether `location` names an object store (s3://...) rather than a local path: the one place
// that tells the two apart by scheme. OpenObjectStore, SplitObjectUrl and every caller that must
// tell an input or a root from a local path go by it.
bool IsObjectStoreUrl(std::string_view location);

// Opens the store for a root URL: a path or file:// URL (a local directory, created if
// missing) or s3://bucket[/prefix] (S3 or an S3-compatible store; see objstore/s3_store.h).
// Each command opens its stores once, through ObjectStores (objstore/object_stores.h).
absl::StatusOr<std::unique_ptr<ObjectStore>> OpenObjectStore(const std::string& url);

// Splits "s3://bucket/key/parts" into the store's URL ("s3://bucket") and the key.
absl::StatusOr<std::pair<std::string, std::string>> SplitObjectUrl(const std::string& url);

}  // namespace barge

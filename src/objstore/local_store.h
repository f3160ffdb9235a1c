// ObjectStore over a local directory (also a shared filesystem such as NFS or EFS).
#pragma once

#include <string>

#include "objstore/object_store.h"

namespace barge {

class LocalObjectStore : public ObjectStore {
 public:
  explicit LocalObjectStore(std::string root);  // an absolute directory path

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
  std::string PathOf(std::string_view key) const;
  std::string root_;
};

}  // namespace barge

#include "objstore/object_store.h"

#include "common/fs.h"
#include "common/status.h"
#include "common/strings.h"
#include "objstore/local_store.h"
#include "objstore/s3_store.h"

namespace barge {

absl::Status CheckKey(std::string_view key) {
  auto bad = [&](std::string_view why) {
    return absl::InvalidArgumentError(Cat("object key \"", key, "\" ", why));
  };
  if (key.empty()) return bad("is empty");
  if (key.size() > 1024) return bad("is longer than 1024 bytes");
  if (key.front() == '/') return bad("is absolute");
  if (key.find('\0') != std::string_view::npos) return bad("contains NUL");
  size_t start = 0;
  for (;;) {
    size_t slash = key.find('/', start);
    std::string_view part =
        key.substr(start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
    if (part.empty() || part == "." || part == "..") {
      return bad("has an empty, \".\" or \"..\" segment");
    }
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  return absl::OkStatus();
}

bool IsObjectStoreUrl(std::string_view location) { return location.starts_with("s3://"); }

absl::StatusOr<std::unique_ptr<ObjectStore>> OpenObjectStore(const std::string& url) {
  if (IsObjectStoreUrl(url)) {
    ASSIGN_OR_RETURN(S3Options options, S3OptionsFromUrl(url));
    return std::unique_ptr<ObjectStore>(new S3ObjectStore(std::move(options)));
  }
  std::string path = url.starts_with("file://") ? url.substr(7) : url;
  if (path.empty()) return absl::InvalidArgumentError("an object store needs a path or URL");
  path = AbsolutePath(path);
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  RETURN_IF_ERROR(MakeDirs(path));
  return std::unique_ptr<ObjectStore>(new LocalObjectStore(path));
}

absl::StatusOr<std::pair<std::string, std::string>> SplitObjectUrl(const std::string& url) {
  if (!IsObjectStoreUrl(url)) {
    return absl::InvalidArgumentError(Cat("\"", url, "\" is not an s3:// URL"));
  }
  size_t slash = url.find('/', 5);
  if (slash == std::string::npos || slash == 5 || slash + 1 == url.size()) {
    return absl::InvalidArgumentError(Cat("\"", url, "\" names no object (s3://bucket/key)"));
  }
  std::string key = url.substr(slash + 1);
  RETURN_IF_ERROR(WithContext(CheckKey(key), Cat("object ", url)));
  return std::make_pair(url.substr(0, slash), key);
}

}  // namespace barge

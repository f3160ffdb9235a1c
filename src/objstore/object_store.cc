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
  if (key.find('\\') != std::string_view::npos) return bad("contains a backslash");
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

absl::StatusOr<std::unique_ptr<ObjectStore>> OpenObjectStore(const std::string& url) {
  if (url.starts_with("s3://")) {
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

}  // namespace barge

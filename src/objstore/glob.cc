#include "objstore/glob.h"

#include <fnmatch.h>

#include <algorithm>

#include "common/fs.h"
#include "common/status.h"
#include "common/strings.h"
#include "objstore/object_store.h"
#include "objstore/object_stores.h"

namespace barge {

absl::StatusOr<std::vector<std::string>> GlobInputs(const std::string& pattern,
                                                    ObjectStores& stores) {
  if (!IsObjectStoreUrl(pattern)) return GlobFiles(pattern);
  size_t slash = pattern.find('/', pattern.find("://") + 3);
  if (slash == std::string::npos) {
    return absl::InvalidArgumentError(
        Cat("files(\"", pattern, "\"): no key pattern after the bucket"));
  }
  std::string bucket_url = pattern.substr(0, slash);
  std::string key_pattern = pattern.substr(slash + 1);
  size_t wild = key_pattern.find_first_of("*?[");
  std::string prefix = key_pattern.substr(0, wild);
  ASSIGN_OR_RETURN(ObjectStore * store, stores.Open(bucket_url));
  ASSIGN_OR_RETURN(std::vector<ObjectInfo> objects, store->List(prefix));
  std::vector<std::string> out;
  for (const ObjectInfo& o : objects) {
    if (::fnmatch(key_pattern.c_str(), o.key.c_str(), FNM_PATHNAME) == 0) {
      out.push_back(Cat(bucket_url, "/", o.key));
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace barge

// files("...") patterns over local paths or object stores.
//
//   ASSIGN_OR_RETURN(std::vector<std::string> urls, GlobInputs("s3://raw/2026-*/*.csv", stores));
//
// A local pattern is expanded by glob(3) (GlobFiles: braces, wildcards in directory names), its
// paths read in place; this is the one place a files() pattern is told local from remote.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "objstore/object_stores.h"

namespace barge {

// Local paths matching a glob (see GlobFiles), or, for "s3://bucket/prefix/*.csv", the URLs of
// the objects whose keys match it: '*' and '?' do not cross '/', as in a shell. The listing
// covers only the part of the key before the first wildcard, through the bucket's store in
// `stores`. Sorted.
absl::StatusOr<std::vector<std::string>> GlobInputs(const std::string& pattern,
                                                    ObjectStores& stores);

}  // namespace barge

// files("...") patterns over local paths or object stores.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace barge {

// Local paths matching a glob (see GlobFiles), or, for "s3://bucket/prefix/*.csv", the URLs of
// the objects whose keys match it: '*' and '?' do not cross '/', as in a shell. The listing
// covers only the part of the key before the first wildcard. Sorted.
absl::StatusOr<std::vector<std::string>> GlobInputs(const std::string& pattern);

}  // namespace barge

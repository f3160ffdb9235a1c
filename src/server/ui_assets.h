// The web UI's static files (src/server/ui/*), embedded in the binary at build time by
// cmake/embed_ui.cmake, so `barge serve` needs nothing beside itself.
#pragma once

#include <cstddef>
#include <string_view>
#include <vector>

namespace barge {

struct UiAsset {
  const char* path;  // "/index.html"
  const char* content_type;
  const unsigned char* data;
  size_t size;
};

const std::vector<UiAsset>& UiAssets();

}  // namespace barge

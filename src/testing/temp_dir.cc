#include "testing/temp_dir.h"

#include <unistd.h>

#include <cstdlib>

#include "common/strings.h"

namespace barge {

ScopedTempDir::ScopedTempDir(const std::string& prefix) {
  const char* tmp = std::getenv("TMPDIR");
  std::filesystem::path base = tmp != nullptr && *tmp != '\0' ? tmp : "/tmp";
  static int counter = 0;
  path_ = base / Cat(prefix, "-", ::getpid(), "-", ++counter);
  std::filesystem::remove_all(path_);
  std::filesystem::create_directories(path_);
}

ScopedTempDir::~ScopedTempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

}  // namespace barge

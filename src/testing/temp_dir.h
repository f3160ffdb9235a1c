// A fresh directory for one test, removed when it goes out of scope: tests never write into the
// working directory and never see each other's files.
#pragma once

#include <filesystem>
#include <string>

namespace barge {

class ScopedTempDir {
 public:
  // Creates <TMPDIR>/<prefix>-<test name>-<pid>, emptied first.
  explicit ScopedTempDir(const std::string& prefix);
  ~ScopedTempDir();
  ScopedTempDir(const ScopedTempDir&) = delete;
  ScopedTempDir& operator=(const ScopedTempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

}  // namespace barge

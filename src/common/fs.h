// Small filesystem helpers over std::filesystem and POSIX, returning absl::Status with the path
// in every error message.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace barge {

absl::Status MakeDirs(const std::string& path);
absl::Status RemoveTree(const std::string& path);  // OK if it does not exist
absl::StatusOr<std::string> ReadFile(const std::string& path);

// Writes `data` to `path` durably: a temporary file in the same directory, fsync, rename.
// Used only for local files (manifests, input lists), never as a commit protocol for outputs.
absl::Status WriteFileAtomic(const std::string& path, std::string_view data);

// Plain write (create or truncate), no fsync.
absl::Status WriteFile(const std::string& path, std::string_view data);

struct FileEntry {
  std::string relative_path;  // relative to the listed directory, '/'-separated
  int64_t size = 0;
};

// All regular files under `dir`, recursively, sorted by relative path.
absl::StatusOr<std::vector<FileEntry>> ListFilesRecursive(const std::string& dir);

// Hex SHA-256 of a file's contents (OpenSSL EVP).
absl::StatusOr<std::string> Sha256File(const std::string& path);

// Absolute, lexically normal form of `path` (relative to the current directory).
std::string AbsolutePath(const std::string& path);

// Local paths matching a glob (glob(3) with brace expansion), sorted; directories excluded.
absl::StatusOr<std::vector<std::string>> GlobFiles(const std::string& pattern);

}  // namespace barge

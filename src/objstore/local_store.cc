// The local-directory ObjectStore: keys are relative paths under the root. Writes go to a
// temporary file beside the target and are renamed into place, so readers never see a part.
#include "objstore/local_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <random>

#include "common/fs.h"
#include "common/status.h"
#include "common/strings.h"

namespace barge {
namespace {

constexpr std::string_view kTempPrefix = ".barge-tmp-";

absl::Status Errno(std::string_view what, const std::string& path) {
  int e = errno;
  std::string message = Cat(what, " ", path, ": ", std::strerror(e));
  return e == ENOENT ? absl::NotFoundError(message) : absl::InternalError(message);
}

std::string TempBeside(const std::string& path) {
  static thread_local std::mt19937_64 rng(std::random_device{}());
  std::filesystem::path p(path);
  return (p.parent_path() / Cat(kTempPrefix, p.filename().string(), "-", rng() % 1000000007))
      .string();
}

absl::StatusOr<ObjectInfo> InfoOf(const std::string& key, const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return Errno("stat", path);
  if (!S_ISREG(st.st_mode)) return absl::NotFoundError(Cat(path, " is not a file"));
  return ObjectInfo{
      key, static_cast<int64_t>(st.st_size),
      Cat(st.st_ino, "-", st.st_size, "-", st.st_mtim.tv_sec, ".", st.st_mtim.tv_nsec)};
}

// Writes `data` to a new temporary file beside `path` and fsyncs it; returns its path.
absl::StatusOr<std::string> WriteTemp(const std::string& path, std::string_view data) {
  RETURN_IF_ERROR(MakeDirs(std::filesystem::path(path).parent_path().string()));
  std::string tmp = TempBeside(path);
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return Errno("creating", tmp);
  for (size_t done = 0; done < data.size();) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      absl::Status s = Errno("writing", tmp);
      ::close(fd);
      ::unlink(tmp.c_str());
      return s;
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    absl::Status s = Errno("syncing", tmp);
    ::unlink(tmp.c_str());
    return s;
  }
  return tmp;
}

}  // namespace

LocalObjectStore::LocalObjectStore(std::string root) : root_(std::move(root)) {}

std::string LocalObjectStore::PathOf(std::string_view key) const { return Cat(root_, "/", key); }

std::string LocalObjectStore::Url(std::string_view key) const {
  return key.empty() ? Cat("file://", root_) : Cat("file://", root_, "/", key);
}

absl::StatusOr<std::string> LocalObjectStore::Get(std::string_view key,
                                                  std::optional<ByteRange> range) {
  RETURN_IF_ERROR(CheckKey(key));
  std::string path = PathOf(key);
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Errno("opening", path);
  struct stat st {};
  ::fstat(fd, &st);
  int64_t size = st.st_size;
  int64_t offset = range ? std::min(range->offset, size) : 0;
  int64_t length =
      range && range->length >= 0 ? std::min(range->length, size - offset) : size - offset;
  std::string out(static_cast<size_t>(length), '\0');
  for (int64_t done = 0; done < length;) {
    ssize_t n = ::pread(fd, out.data() + done, length - done, offset + done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      absl::Status s = n < 0 ? Errno("reading", path)
                             : absl::DataLossError(Cat(path, " shrank while being read"));
      ::close(fd);
      return s;
    }
    done += n;
  }
  ::close(fd);
  return out;
}

absl::StatusOr<ObjectInfo> LocalObjectStore::GetToFile(std::string_view key,
                                                       const std::string& path) {
  RETURN_IF_ERROR(CheckKey(key));
  std::string source = PathOf(key);
  ASSIGN_OR_RETURN(ObjectInfo info, InfoOf(std::string(key), source));
  RETURN_IF_ERROR(MakeDirs(std::filesystem::path(path).parent_path().string()));
  std::error_code ec;
  std::filesystem::copy_file(source, path, std::filesystem::copy_options::overwrite_existing, ec);
  if (ec) return absl::InternalError(Cat("copying ", source, " to ", path, ": ", ec.message()));
  return info;
}

absl::StatusOr<ObjectInfo> LocalObjectStore::Put(std::string_view key, std::string_view data) {
  RETURN_IF_ERROR(CheckKey(key));
  std::string path = PathOf(key);
  ASSIGN_OR_RETURN(std::string tmp, WriteTemp(path, data));
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    absl::Status s = Errno("renaming into", path);
    ::unlink(tmp.c_str());
    return s;
  }
  return InfoOf(std::string(key), path);
}

absl::StatusOr<ObjectInfo> LocalObjectStore::PutFile(std::string_view key,
                                                     const std::string& path) {
  ASSIGN_OR_RETURN(std::string data, ReadFile(path));
  return Put(key, data);
}

absl::StatusOr<bool> LocalObjectStore::PutIfAbsent(std::string_view key, std::string_view data) {
  RETURN_IF_ERROR(CheckKey(key));
  std::string path = PathOf(key);
  ASSIGN_OR_RETURN(std::string tmp, WriteTemp(path, data));
  // link(2) fails with EEXIST if the name exists: an atomic create-if-absent.
  int rc = ::link(tmp.c_str(), path.c_str());
  int e = errno;
  ::unlink(tmp.c_str());
  if (rc == 0) return true;
  if (e == EEXIST) return false;
  errno = e;
  return Errno("linking into", path);
}

absl::StatusOr<ObjectInfo> LocalObjectStore::Head(std::string_view key) {
  RETURN_IF_ERROR(CheckKey(key));
  return InfoOf(std::string(key), PathOf(key));
}

absl::StatusOr<std::vector<ObjectInfo>> LocalObjectStore::List(std::string_view prefix) {
  if (!prefix.empty() && prefix.find('\0') != std::string_view::npos) {
    return absl::InvalidArgumentError("a prefix may not contain NUL");
  }
  // Walk only the deepest directory the prefix names.
  std::string dir_part(
      prefix.substr(0, prefix.rfind('/') == std::string_view::npos ? 0 : prefix.rfind('/')));
  std::string start = dir_part.empty() ? root_ : PathOf(dir_part);
  std::vector<ObjectInfo> out;
  std::error_code ec;
  if (!std::filesystem::is_directory(start, ec)) return out;
  ASSIGN_OR_RETURN(std::vector<FileEntry> files, ListFilesRecursive(start));
  for (const FileEntry& f : files) {
    std::string key = dir_part.empty() ? f.relative_path : Cat(dir_part, "/", f.relative_path);
    // A view of key itself: key.substr() would be a temporary string, gone by the next line
    // (AddressSanitizer found the view reading it).
    std::string_view name =
        std::string_view(key).substr(key.rfind('/') == std::string::npos ? 0 : key.rfind('/') + 1);
    if (name.starts_with(kTempPrefix) || !key.starts_with(prefix)) continue;
    ASSIGN_OR_RETURN(ObjectInfo info, InfoOf(key, PathOf(key)));
    out.push_back(std::move(info));
  }
  std::sort(out.begin(), out.end(),
            [](const ObjectInfo& a, const ObjectInfo& b) { return a.key < b.key; });
  return out;
}

absl::Status LocalObjectStore::Delete(const std::vector<std::string>& keys) {
  for (const std::string& key : keys) RETURN_IF_ERROR(CheckKey(key));
  for (const std::string& key : keys) {
    std::string path = PathOf(key);
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) return Errno("deleting", path);
  }
  return absl::OkStatus();
}

}  // namespace barge

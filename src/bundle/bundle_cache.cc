// BundleCache: unpacked bundles shared by the processes of one machine, guarded by flock(2).
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <utility>

#include "bundle/bundle.h"
#include "common/fs.h"
#include "common/status.h"
#include "common/strings.h"

namespace barge {
namespace fs = std::filesystem;
namespace {

absl::Status ErrnoError(std::string_view what, const std::string& path) {
  return absl::InternalError(Cat(what, " ", path, ": ", std::strerror(errno)));
}

bool IsSha256Hex(const std::string& s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

bool IsDirectory(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// Opens and flocks `path` (created if missing) with `op`. An evictor unlinks a lock file while
// holding it exclusively, so a lock won on a file no longer at `path` is retried on the new one.
// Returns -1 when `op` has LOCK_NB and the lock is held elsewhere.
absl::StatusOr<int> LockFile(const std::string& path, int op) {
  for (;;) {
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return ErrnoError("opening", path);
    int rc;
    do {
      rc = ::flock(fd, op);
    } while (rc != 0 && errno == EINTR);
    if (rc != 0) {
      int err = errno;
      ::close(fd);
      if (err == EWOULDBLOCK) return -1;
      errno = err;
      return ErrnoError("locking", path);
    }
    struct stat held, now;
    if (::fstat(fd, &held) == 0 && ::stat(path.c_str(), &now) == 0 && held.st_ino == now.st_ino &&
        held.st_dev == now.st_dev) {
      return fd;
    }
    ::close(fd);
  }
}

// The total size of the regular files under `dir` (links not followed).
int64_t TreeBytes(const std::string& dir) {
  int64_t total = 0;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->symlink_status(ec).type() == fs::file_type::regular) {
      total += static_cast<int64_t>(it->file_size(ec));
    }
  }
  return total;
}

// The size recorded for a bundle, or measured (and recorded) when the record is missing.
int64_t BundleBytes(const std::string& path) {
  absl::StatusOr<std::string> text = ReadFile(Cat(path, ".size"));
  if (text.ok()) {
    try {
      return std::stoll(*text);
    } catch (const std::exception&) {
      // Unreadable: measured below.
    }
  }
  int64_t bytes = TreeBytes(path);
  absl::Status s = WriteFileAtomic(Cat(path, ".size"), Cat(bytes));
  (void)s;  // a missing record is measured again next time
  return bytes;
}

// After a failed unpack: the lock file goes too, unless someone holds it or the bundle appeared.
void DropLockFile(const std::string& path) {
  absl::StatusOr<int> fd = LockFile(Cat(path, ".lock"), LOCK_EX | LOCK_NB);
  if (!fd.ok() || *fd < 0) return;
  if (!IsDirectory(path)) ::unlink(Cat(path, ".lock").c_str());
  ::close(*fd);
}

std::string UniqueSuffix() {
  static std::atomic<int64_t> counter{0};
  return Cat(::getpid(), ".", counter.fetch_add(1));
}

}  // namespace

BundleCache::Lease::Lease(Lease&& other) noexcept
    : path_(std::move(other.path_)), lock_fd_(std::exchange(other.lock_fd_, -1)) {}

BundleCache::Lease& BundleCache::Lease::operator=(Lease&& other) noexcept {
  if (this != &other) {
    if (lock_fd_ >= 0) ::close(lock_fd_);
    path_ = std::move(other.path_);
    lock_fd_ = std::exchange(other.lock_fd_, -1);
  }
  return *this;
}

BundleCache::Lease::~Lease() {
  if (lock_fd_ >= 0) ::close(lock_fd_);
}

BundleCache::BundleCache(std::string dir, int64_t max_bytes)
    : dir_(std::move(dir)), max_bytes_(max_bytes) {}

absl::StatusOr<BundleCache::Lease> BundleCache::Get(const std::string& sha256, const Fetch& fetch) {
  if (!IsSha256Hex(sha256)) {
    return absl::InvalidArgumentError(Cat("bundle hash ", sha256, " is not a sha256"));
  }
  RETURN_IF_ERROR(MakeDirs(dir_));
  const std::string path = Cat(dir_, "/", sha256);
  // The shared lock comes first: from here on no evictor removes the bundle under us.
  ASSIGN_OR_RETURN(int fd, LockFile(Cat(path, ".lock"), LOCK_SH));
  Lease lease(path, fd);
  if (!IsDirectory(path)) {
    bool mine = false;
    {
      absl::MutexLock lock(&mu_);
      while (unpacking_.count(sha256) > 0) unpacked_.Wait(&mu_);
      if (!IsDirectory(path)) {
        unpacking_.insert(sha256);
        ++fetches_;
        mine = true;
      }
    }
    if (mine) {
      absl::Status s = FetchAndUnpack(sha256, path, fetch);
      {
        absl::MutexLock lock(&mu_);
        unpacking_.erase(sha256);
        unpacked_.SignalAll();
      }
      if (!s.ok()) {
        lease = Lease();
        DropLockFile(path);
        return s;
      }
      Touch(fd);
      RETURN_IF_ERROR(Evict(sha256));
      return lease;
    }
    if (!IsDirectory(path)) {
      return absl::UnavailableError(Cat("bundle ", sha256, " could not be unpacked here"));
    }
  }
  Touch(fd);
  return lease;
}

absl::Status BundleCache::FetchAndUnpack(const std::string& sha256, const std::string& path,
                                         const Fetch& fetch) {
  const std::string archive = Cat(path, ".fetch.", UniqueSuffix());
  absl::Status s = WithContext(fetch(archive), Cat("fetching bundle ", sha256));
  if (s.ok()) {
    s = UnpackBundle(archive, path, sha256);
    if (absl::IsAlreadyExists(s) && IsDirectory(path)) s = absl::OkStatus();  // theirs will do
  }
  ::unlink(archive.c_str());
  RETURN_IF_ERROR(s);
  return WriteFileAtomic(Cat(path, ".size"), Cat(TreeBytes(path)));
}

void BundleCache::Touch(int lock_fd) {
  struct timespec now;
  ::clock_gettime(CLOCK_REALTIME, &now);
  int64_t ns = int64_t{now.tv_sec} * 1000000000 + now.tv_nsec;
  {
    absl::MutexLock lock(&mu_);
    ns = std::max(ns, last_touch_ns_ + 1);
    last_touch_ns_ = ns;
  }
  struct timespec times[2];
  times[0].tv_sec = times[1].tv_sec = ns / 1000000000;
  times[0].tv_nsec = times[1].tv_nsec = ns % 1000000000;
  ::futimens(lock_fd, times);  // best effort: a failed touch only makes eviction less exact
}

absl::Status BundleCache::Evict(const std::string& keep) {
  struct Held {
    std::string sha256;
    int64_t bytes = 0;
    int64_t used_ns = 0;
  };
  std::vector<Held> held;
  int64_t total = 0;
  std::error_code ec;
  for (fs::directory_iterator it(dir_, ec), end; !ec && it != end; it.increment(ec)) {
    std::string name = it->path().filename().string();
    if (!IsSha256Hex(name) || !it->is_directory(ec)) continue;
    Held h;
    h.sha256 = name;
    h.bytes = BundleBytes(it->path().string());
    struct stat st;
    if (::stat(Cat(it->path().string(), ".lock").c_str(), &st) == 0) {
      h.used_ns = int64_t{st.st_mtim.tv_sec} * 1000000000 + st.st_mtim.tv_nsec;
    }
    total += h.bytes;
    held.push_back(std::move(h));
  }
  if (ec) return absl::InternalError(Cat("listing ", dir_, ": ", ec.message()));
  std::sort(held.begin(), held.end(), [](const Held& a, const Held& b) {
    return a.used_ns != b.used_ns ? a.used_ns < b.used_ns : a.sha256 < b.sha256;
  });
  for (const Held& h : held) {
    if (total <= max_bytes_) break;
    if (h.sha256 == keep) continue;
    const std::string path = Cat(dir_, "/", h.sha256);
    const std::string lock_path = Cat(path, ".lock");
    ASSIGN_OR_RETURN(int fd, LockFile(lock_path, LOCK_EX | LOCK_NB));
    if (fd < 0) continue;  // leased
    absl::Status s = RemoveReadOnlyTree(path);
    if (s.ok()) {
      ::unlink(Cat(path, ".size").c_str());
      ::unlink(lock_path.c_str());
      total -= h.bytes;
    }
    ::close(fd);
    RETURN_IF_ERROR(s);
  }
  return absl::OkStatus();
}

}  // namespace barge

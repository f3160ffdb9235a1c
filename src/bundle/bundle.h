// Code bundles: a pipeline's directory packed into one deterministic archive at submit, stored
// content-addressed under the run's root (DataRoot::BundleKey), and unpacked read-only on every
// worker, where its tasks see it as $BARGE_PIPELINE_DIR. The same files give the same bytes and
// the same hash, so a second run of unchanged code uploads nothing.
//
//   ASSIGN_OR_RETURN(PackedBundle b, PackBundle(pipeline.dir, scratch + "/b.tar.zst", options));
//   // b.sha256 names it: <root>/bundles/<b.sha256>.tar.zst
//   BundleCache cache(scratch + "/.bundles", 2LL << 30);
//   ASSIGN_OR_RETURN(BundleCache::Lease dir, cache.Get(b.sha256, fetch));  // dir.path()
//
// What goes in: every file and directory under the pipeline's directory, minus what a
// .gitignore or .bargeignore (in that directory or below) excludes, minus .git/ and the
// directories named in BundleOptions::exclude (the data root, state and scratch directories when
// they lie inside). Entries are sorted by path, with times, owners and names of owners fixed
// (mtime 0, uid and gid 0) and modes kept (so scripts keep their exec bit). Symbolic links that
// stay inside the directory are kept as links; one that points outside it, and anything that is
// not a regular file, directory or such a link, is refused naming the entry.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace barge {

struct BundleOptions {
  int64_t max_bytes = 256LL << 20;   // sum of the files' sizes; --bundle-max
  std::vector<std::string> exclude;  // absolute directories left out, if inside the directory
};

struct PackedBundle {
  std::string sha256;         // hex, of the uncompressed tar stream: the bundle's identity
  std::string archive_path;   // the zstd-compressed tar written
  int64_t files = 0;          // regular files in it
  int64_t bytes = 0;          // their total size
  int64_t archive_bytes = 0;  // the archive's size
};

// The archive's name under a root: "bundles/<sha256>.tar.zst".
std::string BundleKey(const std::string& sha256);

// Packs `dir` into `archive_path`. FailedPrecondition over options.max_bytes, with a message
// that gives the total, the cap, how to raise it (--bundle-max) or exclude files (.bargeignore),
// and the largest files with their sizes. InvalidArgument naming the entry for what cannot be
// packed (see above); NotFound if `dir` is not a directory.
absl::StatusOr<PackedBundle> PackBundle(const std::string& dir, const std::string& archive_path,
                                        const BundleOptions& options);

// Unpacks `archive_path` into `dest` (created; must not exist), checking that the tar stream's
// sha256 is `expected_sha256` (DataLoss if not: nothing is left at `dest`). Files and
// directories are made read-only (write bits cleared); modes are otherwise kept. Refuses entries
// that would land outside `dest` (absolute names, "..", links out) as DataLoss.
absl::Status UnpackBundle(const std::string& archive_path, const std::string& dest,
                          const std::string& expected_sha256);

// Removes a tree that UnpackBundle made read-only (write bits are put back on its directories
// first). OK if `path` does not exist.
absl::Status RemoveReadOnlyTree(const std::string& path);

// A worker's bundles, unpacked once per hash under one directory and kept up to a size, least
// recently used out. Safe across processes sharing the directory (several workers on one
// machine): a bundle in use by any of them (a Lease held) is never removed, and two that want
// the same missing bundle unpack it once between them or harmlessly twice.
//
// On disk: <dir>/<sha256>/ is an unpacked bundle, <dir>/<sha256>.size its files' total size, and
// <dir>/<sha256>.lock the file whose flock guards it (shared while leased, exclusive to evict)
// and whose mtime, set on every Get, orders the bundles for eviction.
//
// Thread-safety: Get may be called from any thread; a Lease belongs to one thread at a time.
class BundleCache {
 public:
  BundleCache(std::string dir, int64_t max_bytes);

  // Keeps one unpacked bundle from eviction while held (a shared flock on its lock file).
  class Lease {
   public:
    Lease() = default;
    Lease(std::string path, int lock_fd) : path_(std::move(path)), lock_fd_(lock_fd) {}
    Lease(Lease&& other) noexcept;
    Lease& operator=(Lease&& other) noexcept;
    ~Lease();
    const std::string& path() const { return path_; }  // the unpacked directory

   private:
    std::string path_;
    int lock_fd_ = -1;
  };

  // Downloads an archive to the given local path (the caller's object store).
  using Fetch = std::function<absl::Status(const std::string& archive_path)>;

  // The unpacked bundle `sha256`, fetched with `fetch` and unpacked if this machine does not
  // hold it yet. Errors are fetch's, or UnpackBundle's; InvalidArgument if `sha256` is not 64
  // lowercase hex digits. After an unpack, evicts least recently used bundles (never a leased
  // one, nor this one) until the total is within max_bytes.
  absl::StatusOr<Lease> Get(const std::string& sha256, const Fetch& fetch);

  int64_t fetches() const {
    absl::MutexLock lock(&mu_);
    return fetches_;
  }

 private:
  // Fetches `sha256` into the cache and unpacks it to `path`, recording its size.
  absl::Status FetchAndUnpack(const std::string& sha256, const std::string& path,
                              const Fetch& fetch);
  // Removes unleased bundles, least recently used first, other than `keep`, while over the cap.
  absl::Status Evict(const std::string& keep);
  // Sets the lock file's mtime to now, later than any this process set before.
  void Touch(int lock_fd);

  std::string dir_;
  int64_t max_bytes_;
  mutable absl::Mutex mu_;  // one unpack per hash at a time in this process
  absl::CondVar unpacked_;  // signalled when a hash leaves unpacking_
  int64_t fetches_ ABSL_GUARDED_BY(mu_) = 0;
  std::set<std::string> unpacking_ ABSL_GUARDED_BY(mu_);  // hashes being fetched and unpacked
  int64_t last_touch_ns_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace barge

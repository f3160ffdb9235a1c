#include "bundle/bundle.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>

#include "bundle/ignore.h"
#include "common/fs.h"
#include "common/status.h"
#include "common/strings.h"
#include "common/text.h"
#include "common/units.h"

namespace barge {
namespace fs = std::filesystem;
namespace {

constexpr size_t kBufferBytes = 1 << 20;

using ArchivePtr = std::unique_ptr<struct archive, void (*)(struct archive*)>;
using EntryPtr = std::unique_ptr<struct archive_entry, decltype(&archive_entry_free)>;
using DigestPtr = std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)>;

ArchivePtr NewWriter() {
  return ArchivePtr(archive_write_new(), [](struct archive* a) { archive_write_free(a); });
}
ArchivePtr NewReader() {
  return ArchivePtr(archive_read_new(), [](struct archive* a) { archive_read_free(a); });
}

std::string ArchiveError(struct archive* a) {
  const char* e = archive_error_string(a);
  return e != nullptr ? e : "unknown libarchive error";
}

absl::Status ErrnoError(std::string_view what, const std::string& path) {
  std::string message = Cat(what, " ", path, ": ", std::strerror(errno));
  if (errno == ENOENT) return absl::NotFoundError(message);
  return absl::InternalError(message);
}

struct FdCloser {
  int fd;
  ~FdCloser() {
    if (fd >= 0) ::close(fd);
  }
};

DigestPtr NewSha256() {
  DigestPtr ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  if (ctx && EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) ctx.reset();
  return ctx;
}

std::string HexDigest(EVP_MD_CTX* ctx) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx, digest, &len);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned int i = 0; i < len; ++i) {
    hex += kHex[digest[i] >> 4];
    hex += kHex[digest[i] & 15];
  }
  return hex;
}

// A name no other thread or process picks: for temporary siblings of a destination.
std::string UniqueSuffix() {
  static std::atomic<int64_t> counter{0};
  return Cat(::getpid(), ".", counter.fetch_add(1));
}

// Whether a link at `entry` (relative) to `target` stays inside, judged on the names alone.
bool LinkStaysInside(const std::string& entry, const std::string& target) {
  if (target.empty() || target[0] == '/') return false;
  fs::path resolved = (fs::path(entry).parent_path() / target).lexically_normal();
  std::string first = resolved.empty() ? "" : resolved.begin()->string();
  return first != "..";
}

bool IsUnder(const fs::path& path, const fs::path& root) {
  auto [r, p] = std::mismatch(root.begin(), root.end(), path.begin(), path.end());
  return r == root.end();
}

// --- Packing -----------------------------------------------------------------------------------

// The tar stream's sink: hashes the uncompressed bytes, then hands them to the compressing
// writer (libarchive's raw format through its zstd filter).
struct TarSink {
  EVP_MD_CTX* sha = nullptr;
  struct archive* compressor = nullptr;
};

la_ssize_t TarSinkWrite(struct archive* a, void* client, const void* buffer, size_t length) {
  auto* sink = static_cast<TarSink*>(client);
  EVP_DigestUpdate(sink->sha, buffer, length);
  la_ssize_t n = archive_write_data(sink->compressor, buffer, length);
  if (n < 0) {
    archive_set_error(a, EIO, "compressing: %s", archive_error_string(sink->compressor));
    return -1;
  }
  return static_cast<la_ssize_t>(length);
}

absl::Status CheckEntries(const std::string& dir, const std::vector<WalkEntry>& entries) {
  const fs::path root = fs::weakly_canonical(AbsolutePath(dir));
  for (const WalkEntry& e : entries) {
    if (absl::Status name = CheckCarriableName("the entry", e.path); !name.ok()) {
      return absl::InvalidArgumentError(Cat("cannot bundle ", dir, ": ", name.message(),
                                            "; rename it, or leave it out with a .bargeignore"));
    }
    if (e.kind == WalkEntry::Kind::kOther) {
      return absl::InvalidArgumentError(
          Cat("cannot bundle ", e.path, " in ", dir,
              ": not a regular file, directory or symbolic link; leave it out with a "
              ".bargeignore"));
    }
    if (e.kind != WalkEntry::Kind::kSymlink) continue;
    std::error_code ec;
    fs::path real = fs::weakly_canonical(root / e.path, ec);
    if (!LinkStaysInside(e.path, e.link_target) || ec || !IsUnder(real, root)) {
      return absl::InvalidArgumentError(
          Cat("cannot bundle the symbolic link ", e.path, " -> ", e.link_target, " in ", dir,
              ": it points outside the pipeline directory (only relative links that stay inside "
              "are kept); copy what it points to in, or leave it out with a .bargeignore"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckCap(const std::string& dir, const std::vector<WalkEntry>& entries, int64_t total,
                      int64_t files, int64_t max_bytes) {
  if (total <= max_bytes) return absl::OkStatus();
  std::vector<const WalkEntry*> largest;
  for (const WalkEntry& e : entries) {
    if (e.kind == WalkEntry::Kind::kFile) largest.push_back(&e);
  }
  size_t shown = std::min<size_t>(5, largest.size());
  std::partial_sort(largest.begin(), largest.begin() + static_cast<ptrdiff_t>(shown), largest.end(),
                    [](const WalkEntry* a, const WalkEntry* b) {
                      return a->size != b->size ? a->size > b->size : a->path < b->path;
                    });
  std::vector<std::string> names;
  for (size_t i = 0; i < shown; ++i) {
    names.push_back(Cat(largest[i]->path, " (", FormatBytes(largest[i]->size), ")"));
  }
  return absl::FailedPreconditionError(
      Cat("the pipeline directory ", dir, " holds ", FormatBytes(total), " in ", files,
          " files, over the code bundle's cap of ", FormatBytes(max_bytes),
          "; raise it with --bundle-max or leave files out with a .bargeignore; largest: ",
          Join(names, ", ")));
}

absl::Status WriteFileData(struct archive* tar, const std::string& path, int64_t size,
                           std::vector<char>& buffer) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return ErrnoError("opening", path);
  FdCloser closer{fd};
  int64_t done = 0;
  // A file that grows meanwhile (a log being written) is packed as it was when listed.
  while (done < size) {
    size_t want = static_cast<size_t>(std::min<int64_t>(size - done, buffer.size()));
    ssize_t n = ::read(fd, buffer.data(), want);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("reading", path);
    }
    if (n == 0) break;
    done += n;
    if (archive_write_data(tar, buffer.data(), static_cast<size_t>(n)) < 0) {
      return absl::InternalError(Cat("writing ", path, " to the bundle: ", ArchiveError(tar)));
    }
  }
  if (done != size) {
    return absl::FailedPreconditionError(
        Cat(path,
            " shrank while it was being bundled; submit again, or leave it out with a "
            ".bargeignore"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> WriteTar(const std::string& dir, const std::vector<WalkEntry>& entries,
                                     const std::string& archive_path) {
  ArchivePtr compressor = NewWriter();
  archive_write_set_format_raw(compressor.get());
  if (archive_write_add_filter_zstd(compressor.get()) != ARCHIVE_OK) {
    return absl::InternalError(Cat("libarchive has no zstd: ", ArchiveError(compressor.get())));
  }
  archive_write_set_bytes_in_last_block(compressor.get(), 1);
  if (archive_write_open_filename(compressor.get(), archive_path.c_str()) != ARCHIVE_OK) {
    return absl::InternalError(
        Cat("creating ", archive_path, ": ", ArchiveError(compressor.get())));
  }
  EntryPtr raw(archive_entry_new(), archive_entry_free);
  archive_entry_set_pathname(raw.get(), "bundle.tar");
  archive_entry_set_filetype(raw.get(), AE_IFREG);
  if (archive_write_header(compressor.get(), raw.get()) != ARCHIVE_OK) {
    return absl::InternalError(Cat("writing ", archive_path, ": ", ArchiveError(compressor.get())));
  }

  DigestPtr sha = NewSha256();
  if (!sha) return absl::InternalError("initialising SHA-256");
  TarSink sink{sha.get(), compressor.get()};
  ArchivePtr tar = NewWriter();
  archive_write_set_format_pax_restricted(tar.get());
  if (archive_write_open(tar.get(), &sink, nullptr, TarSinkWrite, nullptr) != ARCHIVE_OK) {
    return absl::InternalError(Cat("starting the bundle: ", ArchiveError(tar.get())));
  }
  std::vector<char> buffer(kBufferBytes);
  EntryPtr entry(archive_entry_new(), archive_entry_free);
  for (const WalkEntry& e : entries) {
    archive_entry_clear(entry.get());
    archive_entry_set_pathname(entry.get(), e.path.c_str());
    archive_entry_set_mtime(entry.get(), 0, 0);
    archive_entry_set_uid(entry.get(), 0);
    archive_entry_set_gid(entry.get(), 0);
    archive_entry_set_perm(entry.get(), e.mode & 0777);
    switch (e.kind) {
      case WalkEntry::Kind::kFile:
        archive_entry_set_filetype(entry.get(), AE_IFREG);
        archive_entry_set_size(entry.get(), e.size);
        break;
      case WalkEntry::Kind::kDirectory:
        archive_entry_set_filetype(entry.get(), AE_IFDIR);
        break;
      case WalkEntry::Kind::kSymlink:
        archive_entry_set_filetype(entry.get(), AE_IFLNK);
        archive_entry_set_symlink(entry.get(), e.link_target.c_str());
        break;
      case WalkEntry::Kind::kOther:
        return absl::InternalError(Cat("unexpected entry ", e.path));
    }
    if (archive_write_header(tar.get(), entry.get()) != ARCHIVE_OK) {
      return absl::InternalError(
          Cat("writing ", e.path, " to the bundle: ", ArchiveError(tar.get())));
    }
    if (e.kind == WalkEntry::Kind::kFile) {
      RETURN_IF_ERROR(WriteFileData(tar.get(), Cat(dir, "/", e.path), e.size, buffer));
    }
  }
  if (archive_write_close(tar.get()) != ARCHIVE_OK) {
    return absl::InternalError(Cat("finishing the bundle: ", ArchiveError(tar.get())));
  }
  if (archive_write_close(compressor.get()) != ARCHIVE_OK) {
    return absl::InternalError(
        Cat("finishing ", archive_path, ": ", ArchiveError(compressor.get())));
  }
  return HexDigest(sha.get());
}

// --- Unpacking ---------------------------------------------------------------------------------

// The tar reader's source: decompressed bytes pulled from the raw-format reader, hashed as they
// pass, so the hash covers exactly the stream the entries are read from.
struct TarSource {
  struct archive* decompressor = nullptr;
  EVP_MD_CTX* sha = nullptr;
  std::vector<char> buffer = std::vector<char>(kBufferBytes);
};

la_ssize_t TarSourceRead(struct archive* a, void* client, const void** out) {
  auto* source = static_cast<TarSource*>(client);
  la_ssize_t n =
      archive_read_data(source->decompressor, source->buffer.data(), source->buffer.size());
  if (n < 0) {
    archive_set_error(a, EIO, "decompressing: %s", archive_error_string(source->decompressor));
    return -1;
  }
  EVP_DigestUpdate(source->sha, source->buffer.data(), static_cast<size_t>(n));
  *out = source->buffer.data();
  return n;
}

// Splits an entry's name into segments, refusing absolute names and "..".
absl::StatusOr<std::string> SafeEntryName(const std::string& name) {
  if (name.empty() || name[0] == '/') {
    return absl::DataLossError(Cat("bundle entry ", name, " has an absolute or empty name"));
  }
  std::vector<std::string> parts;
  size_t start = 0;
  while (start <= name.size()) {
    size_t slash = name.find('/', start);
    if (slash == std::string::npos) slash = name.size();
    std::string part = name.substr(start, slash - start);
    start = slash + 1;
    if (part.empty() || part == ".") continue;
    if (part == "..") return absl::DataLossError(Cat("bundle entry ", name, " climbs out (..)"));
    parts.push_back(std::move(part));
  }
  if (parts.empty()) return absl::DataLossError(Cat("bundle entry ", name, " has no name"));
  return Join(parts, "/");
}

class Extractor {
 public:
  explicit Extractor(std::string root) : root_(std::move(root)) {}

  absl::Status Entry(struct archive* tar, struct archive_entry* entry) {
    const char* raw_name = archive_entry_pathname(entry);
    ASSIGN_OR_RETURN(std::string name, SafeEntryName(raw_name != nullptr ? raw_name : ""));
    if (archive_entry_hardlink(entry) != nullptr) {
      return absl::DataLossError(Cat("bundle entry ", name, " is a hard link"));
    }
    for (size_t slash = name.find('/'); slash != std::string::npos;
         slash = name.find('/', slash + 1)) {
      std::string parent = name.substr(0, slash);
      if (links_.count(parent) > 0) {
        return absl::DataLossError(Cat("bundle entry ", name, " goes through the link ", parent));
      }
      if (dirs_.insert(parent).second) RETURN_IF_ERROR(MakeDir(parent));
    }
    const std::string path = Cat(root_, "/", name);
    mode_t perm = archive_entry_perm(entry) & 0555;
    switch (archive_entry_filetype(entry)) {
      case AE_IFDIR:
        if (dirs_.insert(name).second) RETURN_IF_ERROR(MakeDir(name));
        dir_modes_[name] = perm;
        return absl::OkStatus();
      case AE_IFLNK: {
        const char* target = archive_entry_symlink(entry);
        std::string t = target != nullptr ? target : "";
        if (!LinkStaysInside(name, t)) {
          return absl::DataLossError(Cat("bundle entry ", name, " links out, to ", t));
        }
        if (::symlink(t.c_str(), path.c_str()) != 0) return ErrnoError("creating link", path);
        links_.insert(name);
        return absl::OkStatus();
      }
      case AE_IFREG:
        return WriteRegular(tar, path, perm);
      default:
        return absl::DataLossError(Cat("bundle entry ", name, " is of an unsupported type"));
    }
  }

  // Links judged on names alone can still lead out through another link ("c" -> ".", then
  // "d" -> "c/.."); now that all are in place, resolve each for real.
  absl::Status CheckLinks() {
    const fs::path root = fs::weakly_canonical(root_);
    for (const std::string& link : links_) {
      std::error_code ec;
      fs::path real = fs::weakly_canonical(root / link, ec);
      if (ec || !IsUnder(real, root)) {
        return absl::DataLossError(Cat("bundle entry ", link, " links out of the bundle"));
      }
    }
    return absl::OkStatus();
  }

  // Write bits off, deepest directories first so that their parents are still writable.
  absl::Status SealDirectories() {
    for (auto it = dirs_.rbegin(); it != dirs_.rend(); ++it) {
      auto mode = dir_modes_.find(*it);
      mode_t perm = mode != dir_modes_.end() ? mode->second : 0555;
      std::string path = Cat(root_, "/", *it);
      if (::chmod(path.c_str(), perm) != 0) return ErrnoError("sealing", path);
    }
    if (::chmod(root_.c_str(), 0555) != 0) return ErrnoError("sealing", root_);
    return absl::OkStatus();
  }

 private:
  absl::Status MakeDir(const std::string& name) {
    std::string path = Cat(root_, "/", name);
    if (::mkdir(path.c_str(), 0700) == 0) return absl::OkStatus();
    struct stat st;
    if (errno == EEXIST && ::lstat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
      return absl::OkStatus();
    }
    return absl::DataLossError(
        Cat("bundle entry ", name, ": cannot create directory ", path, ": ", std::strerror(errno)));
  }

  absl::Status WriteRegular(struct archive* tar, const std::string& path, mode_t perm) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) return ErrnoError("creating", path);
    FdCloser closer{fd};
    for (;;) {
      la_ssize_t n = archive_read_data(tar, buffer_.data(), buffer_.size());
      if (n < 0) return absl::DataLossError(Cat("reading the bundle: ", ArchiveError(tar)));
      if (n == 0) break;
      const char* p = buffer_.data();
      size_t left = static_cast<size_t>(n);
      while (left > 0) {
        ssize_t w = ::write(fd, p, left);
        if (w < 0) {
          if (errno == EINTR) continue;
          return ErrnoError("writing", path);
        }
        p += w;
        left -= static_cast<size_t>(w);
      }
    }
    if (::fchmod(fd, perm) != 0) return ErrnoError("sealing", path);
    return absl::OkStatus();
  }

  const std::string root_;
  std::set<std::string> dirs_;  // relative; sorted, so a parent comes before its contents
  std::map<std::string, mode_t> dir_modes_;
  std::set<std::string> links_;
  std::vector<char> buffer_ = std::vector<char>(kBufferBytes);
};

absl::Status Extract(const std::string& archive_path, const std::string& root,
                     const std::string& expected_sha256) {
  ArchivePtr decompressor = NewReader();
  archive_read_support_filter_zstd(decompressor.get());
  archive_read_support_format_raw(decompressor.get());
  if (archive_read_open_filename(decompressor.get(), archive_path.c_str(), kBufferBytes) !=
      ARCHIVE_OK) {
    if (archive_errno(decompressor.get()) == ENOENT) {
      return absl::NotFoundError(Cat("bundle ", archive_path, " does not exist"));
    }
    return absl::DataLossError(
        Cat("opening bundle ", archive_path, ": ", ArchiveError(decompressor.get())));
  }
  struct archive_entry* raw = nullptr;
  if (archive_read_next_header(decompressor.get(), &raw) != ARCHIVE_OK) {
    return absl::DataLossError(
        Cat("reading bundle ", archive_path, ": ", ArchiveError(decompressor.get())));
  }
  DigestPtr sha = NewSha256();
  if (!sha) return absl::InternalError("initialising SHA-256");
  TarSource source{decompressor.get(), sha.get()};
  ArchivePtr tar = NewReader();
  archive_read_support_format_tar(tar.get());
  if (archive_read_open(tar.get(), &source, nullptr, TarSourceRead, nullptr) != ARCHIVE_OK) {
    return absl::DataLossError(Cat("reading bundle ", archive_path, ": ", ArchiveError(tar.get())));
  }
  Extractor extractor(root);
  for (;;) {
    struct archive_entry* entry = nullptr;
    int rc = archive_read_next_header(tar.get(), &entry);
    if (rc == ARCHIVE_EOF) break;
    if (rc != ARCHIVE_OK) {
      return absl::DataLossError(
          Cat("reading bundle ", archive_path, ": ", ArchiveError(tar.get())));
    }
    RETURN_IF_ERROR(WithContext(extractor.Entry(tar.get(), entry), Cat("bundle ", archive_path)));
  }
  // What the tar reader left after the end-of-archive blocks is part of the stream too.
  for (;;) {
    const void* unused = nullptr;
    la_ssize_t n = TarSourceRead(tar.get(), &source, &unused);
    if (n < 0) {
      return absl::DataLossError(
          Cat("reading bundle ", archive_path, ": ", ArchiveError(decompressor.get())));
    }
    if (n == 0) break;
  }
  std::string actual = HexDigest(sha.get());
  if (actual != expected_sha256) {
    return absl::DataLossError(Cat("bundle ", archive_path, " has sha256 ", actual,
                                   ", not the expected ", expected_sha256));
  }
  RETURN_IF_ERROR(WithContext(extractor.CheckLinks(), Cat("bundle ", archive_path)));
  return extractor.SealDirectories();
}

}  // namespace

absl::Status RemoveReadOnlyTree(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return absl::OkStatus();
    return ErrnoError("removing", path);
  }
  if (S_ISDIR(st.st_mode)) {
    if (::chmod(path.c_str(), 0700) != 0) return ErrnoError("removing", path);
    std::error_code ec;
    for (fs::directory_iterator it(path, ec), end; !ec && it != end; it.increment(ec)) {
      if (it->is_directory(ec) && !it->is_symlink(ec)) {
        RETURN_IF_ERROR(RemoveReadOnlyTree(it->path().string()));
      }
    }
    if (ec) return absl::InternalError(Cat("listing ", path, ": ", ec.message()));
  }
  return RemoveTree(path);
}

std::string BundleKey(const std::string& sha256) { return Cat("bundles/", sha256, ".tar.zst"); }

absl::StatusOr<PackedBundle> PackBundle(const std::string& dir, const std::string& archive_path,
                                        const BundleOptions& options) {
  std::vector<std::string> exclude = options.exclude;
  exclude.push_back(AbsolutePath(archive_path));  // when the archive is written inside `dir`
  ASSIGN_OR_RETURN(std::vector<WalkEntry> entries, WalkUnignored(dir, exclude));
  RETURN_IF_ERROR(CheckEntries(dir, entries));
  PackedBundle packed;
  for (const WalkEntry& e : entries) {
    if (e.kind != WalkEntry::Kind::kFile) continue;
    ++packed.files;
    packed.bytes += e.size;
  }
  RETURN_IF_ERROR(CheckCap(dir, entries, packed.bytes, packed.files, options.max_bytes));

  std::string tmp = Cat(archive_path, ".tmp.", UniqueSuffix());
  absl::StatusOr<std::string> sha = WriteTar(dir, entries, tmp);
  if (!sha.ok()) {
    ::unlink(tmp.c_str());
    return sha.status();
  }
  if (::rename(tmp.c_str(), archive_path.c_str()) != 0) {
    absl::Status s = ErrnoError("renaming to", archive_path);
    ::unlink(tmp.c_str());
    return s;
  }
  struct stat st;
  if (::stat(archive_path.c_str(), &st) != 0) return ErrnoError("reading", archive_path);
  packed.sha256 = *std::move(sha);
  packed.archive_path = archive_path;
  packed.archive_bytes = st.st_size;
  return packed;
}

absl::Status UnpackBundle(const std::string& archive_path, const std::string& dest,
                          const std::string& expected_sha256) {
  struct stat st;
  if (::lstat(dest.c_str(), &st) == 0) {
    return absl::AlreadyExistsError(Cat("unpacking a bundle into ", dest, ": it exists"));
  }
  std::string tmp = Cat(dest, ".unpacking.", UniqueSuffix());
  if (::mkdir(tmp.c_str(), 0700) != 0) return ErrnoError("creating", tmp);
  absl::Status s = Extract(archive_path, tmp, expected_sha256);
  if (s.ok() && ::rename(tmp.c_str(), dest.c_str()) != 0) {
    if (errno == EEXIST || errno == ENOTEMPTY) {
      s = absl::AlreadyExistsError(Cat("unpacking a bundle into ", dest, ": it exists"));
    } else {
      s = ErrnoError("renaming to", dest);
    }
  }
  if (!s.ok()) {
    absl::Status removed = RemoveReadOnlyTree(tmp);
    (void)removed;  // the first error is the one to report
  }
  return s;
}

}  // namespace barge

#include "bundle/bundle.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <map>
#include <thread>

#include "common/fs.h"
#include "common/strings.h"
#include "testing/temp_dir.h"

namespace barge {
namespace {
namespace fs = std::filesystem;

mode_t ModeOf(const fs::path& p) {
  struct stat st;
  EXPECT_EQ(::lstat(p.c_str(), &st), 0) << p;
  return st.st_mode & 07777;
}

class BundleTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(MakeDirs(Src()).ok()); }
  // Unpacked trees are read-only, which ScopedTempDir's removal does not expect (but for root).
  void TearDown() override { EXPECT_TRUE(RemoveReadOnlyTree(dir_.path().string()).ok()); }
  std::string Src() const { return (dir_.path() / "src").string(); }
  std::string Path(const std::string& name) const { return (dir_.path() / name).string(); }
  void Write(const std::string& rel, const std::string& data, mode_t mode = 0644,
             const std::string& root = "") {
    fs::path p = fs::path(root.empty() ? Src() : root) / rel;
    ASSERT_TRUE(MakeDirs(p.parent_path().string()).ok());
    ASSERT_TRUE(WriteFile(p.string(), data).ok());
    ASSERT_EQ(::chmod(p.c_str(), mode), 0);
  }
  void Hello() {
    Write("pipeline.yaml", "steps: []\n");
    Write("run.sh", "#!/bin/sh\necho hi\n", 0755);
    Write("lib/util.py", "print(1)\n");
  }
  absl::StatusOr<PackedBundle> Pack(const std::string& name, BundleOptions options = {}) {
    return PackBundle(Src(), Path(name), options);
  }
  // Packs and unpacks `Src()` into Path("out").
  std::string RoundTrip(BundleOptions options = {}) {
    auto b = Pack("b.tar.zst", options);
    EXPECT_TRUE(b.ok()) << b.status();
    if (!b.ok()) return "";
    absl::Status s = UnpackBundle(b->archive_path, Path("out"), b->sha256);
    EXPECT_TRUE(s.ok()) << s;
    return Path("out");
  }

  ScopedTempDir dir_{"bundle"};
};

TEST_F(BundleTest, PackingIsDeterministicAcrossCopiesTimesAndOwners) {
  Hello();
  ASSERT_EQ(::symlink("../run.sh", (fs::path(Src()) / "lib/run").c_str()), 0);
  auto a = Pack("a.tar.zst");
  ASSERT_TRUE(a.ok()) << a.status();
  auto again = Pack("again.tar.zst");
  ASSERT_TRUE(again.ok()) << again.status();
  // A copy elsewhere, with other times and owners.
  std::string copy = Path("copy");
  fs::copy(Src(), copy, fs::copy_options::recursive | fs::copy_options::copy_symlinks);
  for (const auto& e : fs::recursive_directory_iterator(copy)) {
    struct timespec times[2] = {{12345, 0}, {67890, 0}};
    ASSERT_EQ(::utimensat(AT_FDCWD, e.path().c_str(), times, AT_SYMLINK_NOFOLLOW), 0);
    if (::geteuid() == 0) {
      ASSERT_EQ(::lchown(e.path().c_str(), 1234, 5678), 0);
    }
  }
  auto c = PackBundle(copy, Path("c.tar.zst"), {});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(a->sha256.size(), 64u);
  EXPECT_EQ(a->sha256, again->sha256);
  EXPECT_EQ(a->sha256, c->sha256);
  EXPECT_EQ(*ReadFile(a->archive_path), *ReadFile(again->archive_path));
  EXPECT_EQ(*ReadFile(a->archive_path), *ReadFile(c->archive_path));
  EXPECT_EQ(a->files, 3);
  EXPECT_EQ(a->bytes, 10 + 18 + 9);
  EXPECT_EQ(a->archive_bytes, static_cast<int64_t>(ReadFile(a->archive_path)->size()));
}

TEST_F(BundleTest, ADifferentFileGivesADifferentHash) {
  Hello();
  auto a = Pack("a.tar.zst");
  Write("run.sh", "#!/bin/sh\necho ho\n", 0755);
  auto b = Pack("b.tar.zst");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(a->sha256, b->sha256);
}

TEST_F(BundleTest, UnpackKeepsContentsAndExecBitsAndIsReadOnly) {
  Hello();
  std::string out = RoundTrip();
  EXPECT_EQ(*ReadFile(out + "/run.sh"), "#!/bin/sh\necho hi\n");
  EXPECT_EQ(*ReadFile(out + "/lib/util.py"), "print(1)\n");
  EXPECT_EQ(ModeOf(out + "/run.sh"), 0555u);
  EXPECT_EQ(ModeOf(out + "/pipeline.yaml"), 0444u);
  EXPECT_EQ(ModeOf(out + "/lib"), 0555u);
  EXPECT_EQ(ModeOf(out), 0555u);
  EXPECT_TRUE(RemoveReadOnlyTree(out).ok());
  EXPECT_FALSE(fs::exists(out));
}

TEST_F(BundleTest, IgnoreFilesGitAndExcludedDirectoriesAreLeftOut) {
  Hello();
  Write(".gitignore", "*.pyc\n");
  Write(".bargeignore", "data/\n");
  Write("lib/util.pyc", "junk");
  Write("data/big.csv", "1,2,3\n");
  Write(".git/HEAD", "ref: refs/heads/main\n");
  Write("state/db", "x");
  Write("scratch/task/1", "x");
  BundleOptions options;
  options.exclude = {Src() + "/state", Src() + "/./scratch/", "/elsewhere/entirely"};
  std::string out = RoundTrip(options);
  EXPECT_TRUE(fs::exists(out + "/lib/util.py"));
  EXPECT_TRUE(fs::exists(out + "/.gitignore"));
  for (const char* gone : {"lib/util.pyc", "data", ".git", "state", "scratch"}) {
    EXPECT_FALSE(fs::exists(fs::symlink_status(out + "/" + gone))) << gone;
  }
}

TEST_F(BundleTest, OverTheCapListsTheLargestFiles) {
  Hello();
  Write("big.bin", std::string(3000, 'x'));
  Write("medium.bin", std::string(2000, 'y'));
  BundleOptions options;
  options.max_bytes = 4096;
  auto b = Pack("b.tar.zst", options);
  ASSERT_EQ(b.status().code(), absl::StatusCode::kFailedPrecondition) << b.status();
  std::string m = ToString(b.status().message());
  EXPECT_NE(m.find("big.bin (2.9KiB), medium.bin (2.0KiB)"), std::string::npos) << m;
  EXPECT_NE(m.find("--bundle-max"), std::string::npos) << m;
  EXPECT_NE(m.find(".bargeignore"), std::string::npos) << m;
  EXPECT_NE(m.find("4.0KiB"), std::string::npos) << m;
  EXPECT_FALSE(fs::exists(Path("b.tar.zst")));
}

TEST_F(BundleTest, LinksInsideAreKeptAsLinks) {
  Hello();
  ASSERT_EQ(::symlink("../run.sh", (fs::path(Src()) / "lib/run").c_str()), 0);
  ASSERT_EQ(::symlink("lib", (fs::path(Src()) / "library").c_str()), 0);
  std::string out = RoundTrip();
  EXPECT_EQ(fs::read_symlink(out + "/lib/run"), "../run.sh");
  EXPECT_EQ(fs::read_symlink(out + "/library"), "lib");
  EXPECT_EQ(*ReadFile(out + "/library/run"), "#!/bin/sh\necho hi\n");
}

TEST_F(BundleTest, LinksOutAreRefusedNamingTheEntry) {
  Hello();
  Write("secret", "s", 0644, Path("."));
  ASSERT_EQ(::symlink("../../secret", (fs::path(Src()) / "lib/s").c_str()), 0);
  auto b = Pack("b.tar.zst");
  ASSERT_EQ(b.status().code(), absl::StatusCode::kInvalidArgument) << b.status();
  std::string m = ToString(b.status().message());
  EXPECT_NE(m.find("lib/s -> ../../secret"), std::string::npos) << m;
  EXPECT_NE(m.find(".bargeignore"), std::string::npos) << m;
  ASSERT_TRUE(RemoveTree(Src() + "/lib/s").ok());
  ASSERT_EQ(::symlink("/etc/hostname", (fs::path(Src()) / "abs").c_str()), 0);
  b = Pack("b.tar.zst");
  ASSERT_EQ(b.status().code(), absl::StatusCode::kInvalidArgument) << b.status();
  EXPECT_NE(ToString(b.status().message()).find("abs -> /etc/hostname"), std::string::npos);
  Write(".bargeignore", "/abs\n");
  EXPECT_TRUE(Pack("b.tar.zst").ok());
}

TEST_F(BundleTest, OtherFileTypesAreRefused) {
  Hello();
  ASSERT_EQ(::mkfifo((fs::path(Src()) / "pipe").c_str(), 0644), 0);
  auto b = Pack("b.tar.zst");
  ASSERT_EQ(b.status().code(), absl::StatusCode::kInvalidArgument) << b.status();
  EXPECT_NE(ToString(b.status().message()).find("pipe"), std::string::npos);
}

TEST_F(BundleTest, ADirectoryThatIsMissingIsNotFound) {
  auto b = PackBundle(Path("nope"), Path("b.tar.zst"), {});
  EXPECT_EQ(b.status().code(), absl::StatusCode::kNotFound);
}

TEST_F(BundleTest, AWrongHashLeavesNothing) {
  Hello();
  auto b = Pack("b.tar.zst");
  ASSERT_TRUE(b.ok()) << b.status();
  absl::Status s = UnpackBundle(b->archive_path, Path("out"), std::string(64, '0'));
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  std::vector<std::string> left;
  for (const auto& e : fs::directory_iterator(dir_.path())) left.push_back(e.path().filename());
  std::sort(left.begin(), left.end());
  EXPECT_EQ(left, (std::vector<std::string>{"b.tar.zst", "src"}));
  EXPECT_EQ(UnpackBundle(b->archive_path, Path("src"), b->sha256).code(),
            absl::StatusCode::kAlreadyExists);
}

// A zstd-compressed tar written with libarchive, holding the entries given; returns the sha256
// of the uncompressed tar (written once plain to hash it, once compressed).
struct Crafted {
  std::string name;
  int type = AE_IFREG;
  std::string target;  // symlink or hardlink target
};
void WriteCrafted(const std::string& path, const std::vector<Crafted>& entries, bool zstd) {
  struct archive* a = archive_write_new();
  archive_write_set_format_pax_restricted(a);
  if (zstd) archive_write_add_filter_zstd(a);
  ASSERT_EQ(archive_write_open_filename(a, path.c_str()), ARCHIVE_OK);
  for (const Crafted& c : entries) {
    struct archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, c.name.c_str());
    archive_entry_set_filetype(e, c.type);
    archive_entry_set_perm(e, 0644);
    bool data = c.type == AE_IFREG && c.target.empty();
    if (c.type == AE_IFLNK) archive_entry_set_symlink(e, c.target.c_str());
    if (c.type == AE_IFREG && !data) archive_entry_set_hardlink(e, c.target.c_str());
    if (data) archive_entry_set_size(e, 4);
    ASSERT_EQ(archive_write_header(a, e), ARCHIVE_OK);
    if (data) archive_write_data(a, "evil", 4);
    archive_entry_free(e);
  }
  archive_write_close(a);
  archive_write_free(a);
}
std::string Craft(const std::string& path, const std::vector<Crafted>& entries) {
  WriteCrafted(path + ".plain", entries, false);
  WriteCrafted(path, entries, true);
  return Sha256File(path + ".plain").value_or("");
}

TEST_F(BundleTest, UnpackRefusesEntriesThatLandOutside) {
  struct Case {
    std::string name;
    std::vector<Crafted> entries;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"dotdot", {{"ok.txt"}, {"../evil.txt"}}, "entry ../evil.txt climbs out"},
      {"deep", {{"a/../../evil.txt"}}, "entry a/../../evil.txt climbs out"},
      {"absolute", {{Path("evil.txt")}}, "absolute"},
      {"linkout", {{"l", AE_IFLNK, "../evil.txt"}}, "entry l links out, to ../evil.txt"},
      {"linkabs", {{"l", AE_IFLNK, "/etc"}}, "entry l links out, to /etc"},
      {"through",
       {{"c", AE_IFLNK, "."}, {"d", AE_IFLNK, "c/.."}, {"d/evil.txt"}},
       "entry d/evil.txt goes through the link d"},
      {"twostep", {{"c", AE_IFLNK, "."}, {"d", AE_IFLNK, "c/.."}}, "entry d links out"},
      {"hardlink", {{"ok.txt"}, {"h", AE_IFREG, "ok.txt"}}, "entry h is a hard link"},
  };
  for (const Case& c : cases) {
    std::string archive = Path(c.name + ".tar.zst");
    std::string sha = Craft(archive, c.entries);
    absl::Status s = UnpackBundle(archive, Path("out"), sha);
    EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << c.name << ": " << s;
    EXPECT_NE(ToString(s.message()).find(c.message), std::string::npos) << c.name << ": " << s;
    EXPECT_FALSE(fs::exists(Path("out"))) << c.name;
    EXPECT_FALSE(fs::exists(Path("evil.txt"))) << c.name;
  }
  // The same way of crafting gives a bundle that unpacks when nothing in it is unsafe.
  std::string archive = Path("fine.tar.zst");
  std::string sha = Craft(archive, {{"d", AE_IFDIR}, {"d/ok.txt"}, {"l", AE_IFLNK, "d"}});
  EXPECT_TRUE(UnpackBundle(archive, Path("out"), sha).ok());
  EXPECT_EQ(*ReadFile(Path("out/l/ok.txt")), "evil");
}

// --- BundleCache -------------------------------------------------------------------------------

class BundleCacheTest : public BundleTest {
 protected:
  // Packs a directory of one file of `bytes` bytes holding `tag`; returns its hash.
  std::string Make(const std::string& tag, int64_t bytes) {
    std::string root = Path("src-" + tag);
    Write("data", tag + std::string(static_cast<size_t>(bytes) - tag.size(), '.'), 0644, root);
    auto b = PackBundle(root, Path(tag + ".tar.zst"), {});
    EXPECT_TRUE(b.ok()) << b.status();
    archives_[b->sha256] = b->archive_path;
    return b->sha256;
  }
  BundleCache::Fetch FetchOf(const std::string& sha) {
    return [this, sha](const std::string& path) {
      ++fetch_calls_;
      std::error_code ec;
      fs::copy_file(archives_[sha], path, ec);
      return ec ? absl::InternalError(ec.message()) : absl::OkStatus();
    };
  }
  std::string Cache() const { return Path("cache"); }

  std::map<std::string, std::string> archives_;
  std::atomic<int> fetch_calls_{0};
};

TEST_F(BundleCacheTest, GetFetchesOnceAndUnpacks) {
  std::string a = Make("a", 100);
  BundleCache cache(Cache(), 1 << 20);
  auto first = cache.Get(a, FetchOf(a));
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->path(), Cache() + "/" + a);
  EXPECT_EQ(ReadFile(first->path() + "/data")->substr(0, 2), "a.");
  auto second = cache.Get(a, FetchOf(a));
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->path(), first->path());
  EXPECT_EQ(fetch_calls_, 1);
  EXPECT_EQ(cache.fetches(), 1);
  BundleCache other_process(Cache(), 1 << 20);  // a second worker on the machine
  ASSERT_TRUE(other_process.Get(a, FetchOf(a)).ok());
  EXPECT_EQ(fetch_calls_, 1);
  EXPECT_EQ(cache.Get("not-a-hash", FetchOf(a)).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(BundleCacheTest, EvictsTheLeastRecentlyUsedUnleasedBundle) {
  std::string a = Make("a", 1000), b = Make("b", 1000), c = Make("c", 1000);
  std::string d = Make("d", 1000);
  BundleCache cache(Cache(), 2500);
  auto held = cache.Get(a, FetchOf(a));  // leased throughout, and the oldest
  ASSERT_TRUE(held.ok()) << held.status();
  ASSERT_TRUE(cache.Get(b, FetchOf(b)).ok());
  ASSERT_TRUE(cache.Get(c, FetchOf(c)).ok());  // over: b goes, a is leased
  EXPECT_TRUE(fs::exists(Cache() + "/" + a));
  EXPECT_FALSE(fs::exists(Cache() + "/" + b));
  EXPECT_FALSE(fs::exists(Cache() + "/" + b + ".lock"));
  EXPECT_TRUE(fs::exists(Cache() + "/" + c));
  *held = BundleCache::Lease();                // a released, but still older than c
  ASSERT_TRUE(cache.Get(c, FetchOf(c)).ok());  // used again: c is now the most recent
  ASSERT_TRUE(cache.Get(d, FetchOf(d)).ok());
  EXPECT_FALSE(fs::exists(Cache() + "/" + a));
  EXPECT_TRUE(fs::exists(Cache() + "/" + c));
  EXPECT_TRUE(fs::exists(Cache() + "/" + d));
  EXPECT_EQ(fetch_calls_, 4);
}

TEST_F(BundleCacheTest, ACorruptedArchiveFailsAndLeavesNothing) {
  std::string a = Make("a", 5000);
  std::string bytes = *ReadFile(archives_[a]);
  bytes[bytes.size() / 2] ^= 0x20;
  ASSERT_TRUE(WriteFile(archives_[a], bytes).ok());
  BundleCache cache(Cache(), 1 << 20);
  auto got = cache.Get(a, FetchOf(a));
  EXPECT_EQ(got.status().code(), absl::StatusCode::kDataLoss) << got.status();
  EXPECT_TRUE(fs::is_empty(Cache()));
}

TEST_F(BundleCacheTest, TwoThreadsGettingOneHashFetchOnce) {
  std::string a = Make("a", 100000);
  BundleCache cache(Cache(), 1 << 20);
  absl::Status s1, s2;
  std::thread t1([&] { s1 = cache.Get(a, FetchOf(a)).status(); });
  std::thread t2([&] { s2 = cache.Get(a, FetchOf(a)).status(); });
  t1.join();
  t2.join();
  EXPECT_TRUE(s1.ok()) << s1;
  EXPECT_TRUE(s2.ok()) << s2;
  EXPECT_EQ(fetch_calls_, 1);
}

}  // namespace
}  // namespace barge

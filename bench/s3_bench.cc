// barge's S3 client alone, for bench/s3.sh: copies a directory to an object store prefix or
// back, CONCURRENCY objects at a time (each large object itself in parallel parts or ranges).
// Prints "seconds bytes MB/s".
//   barge_s3_bench up LOCAL_DIR URL [CONCURRENCY]
//   barge_s3_bench down URL LOCAL_DIR [CONCURRENCY]
#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "common/fs.h"
#include "common/parallel.h"
#include "objstore/object_store.h"

int main(int argc, char** argv) {
  using namespace barge;
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s up LOCAL_DIR URL [N] | down URL LOCAL_DIR [N]\n", argv[0]);
    return 2;
  }
  std::string mode = argv[1];
  bool up = mode == "up";
  std::string local = up ? argv[2] : argv[3], url = up ? argv[3] : argv[2];
  int concurrency = argc > 4 ? std::stoi(argv[4]) : 8;
  auto store = OpenObjectStore(url);
  if (!store.ok()) {
    std::fprintf(stderr, "%s\n", std::string(store.status().message()).c_str());
    return 1;
  }
  std::vector<std::pair<std::string, int64_t>> items;  // key, size
  auto start = std::chrono::steady_clock::now();
  if (up) {
    auto files = ListFilesRecursive(local);
    if (!files.ok()) return 1;
    for (const FileEntry& f : *files) items.emplace_back(f.relative_path, f.size);
  } else {
    auto objects = (*store)->List("");
    if (!objects.ok()) {
      std::fprintf(stderr, "%s\n", std::string(objects.status().message()).c_str());
      return 1;
    }
    for (const ObjectInfo& o : *objects) items.emplace_back(o.key, o.size);
  }
  std::atomic<int64_t> bytes{0};
  absl::Status copied =
      ParallelFor(static_cast<int64_t>(items.size()), concurrency, [&](int64_t i) -> absl::Status {
        const std::string& key = items[static_cast<size_t>(i)].first;
        std::string path = local + "/" + key;
        absl::StatusOr<ObjectInfo> r =
            up ? (*store)->PutFile(key, path) : (*store)->GetToFile(key, path);
        if (!r.ok()) return r.status();
        bytes += r->size;
        return absl::OkStatus();
      });
  if (!copied.ok()) {
    std::fprintf(stderr, "%s\n", std::string(copied.message()).c_str());
    return 1;
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("%.2f %lld %.1f\n", secs, static_cast<long long>(bytes.load()),
              bytes.load() / secs / 1e6);
  return 0;
}

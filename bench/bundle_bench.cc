// Times PackBundle and UnpackBundle on a hello-sized directory (3 small files) and a 100 MiB one
// (100 files of 1 MiB of random bytes and a few scripts), a few rounds each, with wall and CPU
// time and the archive's size.
//
//   build/barge_bundle_bench [scratch-dir] [rounds]
#include <sys/resource.h>
#include <sys/stat.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>

#include "bundle/bundle.h"
#include "common/fs.h"
#include "common/strings.h"
#include "common/units.h"

namespace {

double CpuSeconds() {
  struct rusage ru;
  ::getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

void Check(const absl::Status& s) {
  if (!s.ok()) {
    std::fprintf(stderr, "%s\n", s.ToString().c_str());
    std::exit(1);
  }
}

void Run(const std::string& name, const std::string& dir, const std::string& scratch, int rounds) {
  for (int i = 0; i < rounds; ++i) {
    std::string archive = barge::Cat(scratch, "/", name, i, ".tar.zst");
    double w0 = Now(), c0 = CpuSeconds();
    auto b = barge::PackBundle(dir, archive, {});
    Check(b.status());
    double w1 = Now(), c1 = CpuSeconds();
    std::string out = barge::Cat(scratch, "/", name, i, ".out");
    Check(barge::UnpackBundle(archive, out, b->sha256));
    double w2 = Now(), c2 = CpuSeconds();
    std::printf(
        "%-6s round %d: pack %.3fs wall %.3fs cpu, unpack %.3fs wall %.3fs cpu; %lld files %s "
        "-> archive %s, sha256 %s\n",
        name.c_str(), i, w1 - w0, c1 - c0, w2 - w1, c2 - c1, static_cast<long long>(b->files),
        barge::FormatBytes(b->bytes).c_str(), barge::FormatBytes(b->archive_bytes).c_str(),
        b->sha256.substr(0, 16).c_str());
    Check(barge::RemoveReadOnlyTree(out));
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string scratch = argc > 1 ? argv[1] : "/tmp/barge-bundle-bench";
  int rounds = argc > 2 ? std::atoi(argv[2]) : 3;
  Check(barge::RemoveReadOnlyTree(scratch));
  std::string hello = scratch + "/hello", big = scratch + "/big";
  Check(barge::MakeDirs(hello));
  Check(barge::WriteFile(hello + "/pipeline.yaml", "steps:\n  - name: hi\n    run: ./hi.sh\n"));
  Check(barge::WriteFile(hello + "/hi.sh", "#!/bin/sh\necho hello\n"));
  // A name too long for a ustar header, so the pax extended header is exercised too.
  Check(barge::WriteFile(hello + "/" + std::string(120, 'n') + ".txt", "long name\n"));
  ::chmod((hello + "/hi.sh").c_str(), 0755);
  Check(barge::MakeDirs(big + "/data"));
  std::mt19937_64 rng(42);
  std::string block(1 << 20, '\0');
  for (int f = 0; f < 100; ++f) {
    for (size_t i = 0; i < block.size(); i += 8) {
      uint64_t v = rng();
      std::memcpy(&block[i], &v, 8);
    }
    Check(barge::WriteFile(barge::Cat(big, "/data/part", f, ".bin"), block));
  }
  for (const char* s : {"a.sh", "b.sh", "c.py"}) {
    Check(barge::WriteFile(barge::Cat(big, "/", s), "#!/bin/sh\nexit 0\n"));
  }
  Run("hello", hello, scratch, rounds);
  Run("big", big, scratch, rounds);
  Check(barge::RemoveReadOnlyTree(scratch));
  return 0;
}

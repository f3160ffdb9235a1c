#include "testing/podman.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "common/fs.h"
#include "common/strings.h"
#include "container/runtime.h"

namespace barge {

bool PodmanRequired() {
  const char* env = std::getenv("BARGE_REQUIRE_PODMAN");
  return env != nullptr && std::string_view(env) == "1";
}

bool SetUpPodman(const std::string& dir, std::string* why) {
  std::string conf = Cat(dir, "/containers.conf");
  if (absl::Status s =
          WriteFile(conf, "[containers]\ndefault_ulimits = []\n[engine]\nruntime = \"runc\"\n");
      !s.ok()) {
    *why = Cat("writing ", conf, ": ", s.message());
    return false;
  }
  ::setenv("CONTAINERS_CONF", conf.c_str(), 1);
  absl::StatusOr<ContainerRuntime> podman = ProbeContainerRuntime("podman");
  if (!podman.ok()) {
    *why = Cat("podman is not available: ", podman.status().message());
    return false;
  }
  // One builder at a time (ctest runs tests in parallel); a second finds the image there.
  int lock = ::open("/tmp/barge-test-image.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0666);
  if (lock >= 0) ::flock(lock, LOCK_EX);
  bool ok = true;
  if (RunCommand({"podman", "image", "exists", kTestImage}).exit_code != 0) {
    std::string rootfs = Cat(dir, "/rootfs");
    std::filesystem::create_directories(rootfs + "/bin");
    std::error_code ec;
    std::filesystem::copy_file("/bin/busybox", rootfs + "/bin/busybox", ec);
    if (ec) {
      *why = Cat("copying /bin/busybox (busybox-static) into the test image: ", ec.message());
      ok = false;
    }
    for (const char* tool : {"sh", "cat", "echo", "dd", "sleep", "id", "ls", "wc", "head", "env",
                             "mkdir", "cp", "tr", "sort", "true"}) {
      std::filesystem::create_symlink("busybox", Cat(rootfs, "/bin/", tool), ec);
    }
    if (ok) {
      CommandResult built = RunCommand(
          {"sh", "-c", Cat("tar -C '", rootfs, "' -c . | podman import - ", kTestImage)}, 120'000);
      if (built.exit_code != 0) {
        *why = Cat("building ", kTestImage, ": ", built.output);
        ok = false;
      }
    }
  }
  if (lock >= 0) ::close(lock);
  if (!ok) return false;
  CommandResult hello = RunCommand({"podman", "run", "--rm", kTestImage, "true"}, 120'000);
  if (hello.exit_code != 0) {
    *why = Cat("podman cannot run a container here: ", hello.output);
    return false;
  }
  return true;
}

std::vector<std::string> ContainersNamed(const std::string& fragment) {
  CommandResult ps = RunCommand(
      {"podman", "ps", "-a", "--filter", Cat("name=", fragment), "--format", "{{.Names}}"});
  std::vector<std::string> names;
  size_t start = 0;
  while (start < ps.output.size()) {
    size_t end = ps.output.find('\n', start);
    if (end == std::string::npos) end = ps.output.size();
    if (end > start) names.push_back(ps.output.substr(start, end - start));
    start = end + 1;
  }
  return names;
}

}  // namespace barge

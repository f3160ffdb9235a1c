// Podman for the tests of container steps: whether it runs here, the containers.conf this
// sandbox needs, and a small image built locally (nothing can be pulled).
//
//   std::string why;
//   if (!SetUpPodman(dir, &why)) GTEST_SKIP() << why;  // or FAIL() under BARGE_REQUIRE_PODMAN=1
//   ... a step with image: localhost/barge-test:1 ...
//   EXPECT_TRUE(ContainersNamed("barge-" + run_id).empty());
#pragma once

#include <string>
#include <vector>

namespace barge {

// busybox (static) and links to it: sh, cat, echo, dd, sleep, id, ls, wc, head, env, mkdir, cp,
// tr, sort, true.
inline constexpr char kTestImage[] = "localhost/barge-test:1";

// Writes <dir>/containers.conf (runc, no default ulimits: what podman needs in this sandbox),
// points CONTAINERS_CONF at it for this process and what it starts, and builds kTestImage
// unless it exists (once, under a lock, whichever test gets there first). False, with *why,
// if podman is missing or cannot run a container.
bool SetUpPodman(const std::string& dir, std::string* why);

// The names of containers, running or not, whose name contains `fragment`.
std::vector<std::string> ContainersNamed(const std::string& fragment);

// Whether the test must fail rather than skip without podman (BARGE_REQUIRE_PODMAN=1).
bool PodmanRequired();

}  // namespace barge

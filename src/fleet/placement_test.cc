#include "fleet/placement.h"

#include <gtest/gtest.h>

#include "spec/pipeline.h"

namespace barge {
namespace {

Seat Worker(double cpu, int64_t memory, std::string queue = "default", Labels labels = {}) {
  return {.what = "worker w",
          .cpu = cpu,
          .memory = memory,
          .queue = std::move(queue),
          .labels = std::move(labels)};
}

constexpr int64_t kGiB = int64_t{1} << 30;

TEST(WhyNoSeat, SaysWhichNeedNoWorkerMeets) {
  std::vector<Seat> seats = {Worker(2, 16 * kGiB, "default", {{"arch", "amd64"}}),
                             Worker(8, 8 * kGiB, "default", {{"arch", "amd64"}})};
  EXPECT_EQ(WhyNoSeat({.cpu = 2, .memory = 16 * kGiB}, seats, "r"), "");
  EXPECT_EQ(
      WhyNoSeat({.cpu = 1, .memory = 30 * kGiB}, seats, "r"),
      "needs 30.0GiB of memory; the largest worker of queue default with the cpu has 16.0GiB");
  EXPECT_EQ(WhyNoSeat({.cpu = 16}, seats, "r"),
            "needs 16 cpu; the largest worker of queue default has 8");
  // Enough cpu on one worker and enough memory on another is not a fit.
  EXPECT_NE(WhyNoSeat({.cpu = 8, .memory = 16 * kGiB}, seats, "r"), "");
  EXPECT_EQ(WhyNoSeat({.cpu = 1, .queue = "gpu"}, seats, "r"),
            "queue gpu: no live or configured worker serves it (workers serve default)");
  EXPECT_EQ(WhyNoSeat({.cpu = 1, .labels = {{"arch", "arm64"}}}, seats, "r"),
            "needs labels arch=arm64; no worker of queue default has them (they offer arch=amd64)");
  EXPECT_EQ(WhyNoSeat({.cpu = 1}, {}, "r"), "no live or configured worker");
}

TEST(WhyNoSeat, ARunsOwnPoolTakesAnyOfItsTasksThatFit) {
  Seat pool = Worker(4, 0, "run:r1");
  pool.driver_of = "r1";
  std::vector<Seat> seats = {pool};
  EXPECT_EQ(WhyNoSeat({.cpu = 2, .queue = "gpu", .labels = {{"gpu", "a10"}}}, seats, "r1"), "");
  EXPECT_NE(WhyNoSeat({.cpu = 2}, seats, "r2"), "") << "another run's pool takes none of it";
  EXPECT_NE(WhyNoSeat({.cpu = 8}, seats, "r1"), "");
}

TEST(WhyNoSeat, AnAutoscalersWorkerSizeIsNotHeldToLabelsItDoesNotKnow) {
  Seat shape = Worker(4, 16 * kGiB);
  shape.labels_known = false;
  EXPECT_EQ(WhyNoSeat({.cpu = 4, .labels = {{"container", "podman"}}}, {shape}, "r"), "");
  EXPECT_NE(WhyNoSeat({.cpu = 4, .memory = 32 * kGiB}, {shape}, "r"), "");
}

TEST(CheckPipelineSeats, NamesTheStepsFileAndLine) {
  absl::StatusOr<Pipeline> p = ParsePipeline(R"(name: big
steps:
  - name: small
    run: "true"
  - name: huge
    resources: {memory: 30GiB}
    run: "true"
)",
                                             "big.yaml", {});
  ASSERT_TRUE(p.ok()) << p.status();
  std::string warning;
  absl::Status s = CheckPipelineSeats(*p, {Worker(2, 16 * kGiB)}, warning);
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  EXPECT_EQ(std::string(s.message()),
            p->path +
                ":5:5: step \"huge\": no worker of the fleet can take its tasks: needs 30.0GiB "
                "of memory; the largest worker of queue default with the cpu has 16.0GiB");
  EXPECT_TRUE(warning.empty());
  // Nothing to check against: accepted, with a warning.
  EXPECT_TRUE(CheckPipelineSeats(*p, {}, warning).ok());
  EXPECT_NE(warning.find("no live worker"), std::string::npos) << warning;
}

}  // namespace
}  // namespace barge

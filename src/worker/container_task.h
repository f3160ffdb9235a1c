// An attempt of a step with `image:`: its image pinned for the run, its process the container
// runtime's `run` around the task's command, and what the container's end means (out of memory,
// an image the worker cannot get).
//
//   ImagePins pins(store);                      // one per worker
//   ResolvedTask t = ResolveTask(...);          // t.image as the spec names it
//   pins.Pin(task.key, t);                      // t.image = "name@sha256:..." (or t.image_error)
//   AttemptOutcome o = RunAttempt(runner, stores, t, paths, cancel);  // calls RunInContainer
//
// Thread-safety: ImagePins::Pin and RunInContainer may be called from many threads at once.
#pragma once

#include <map>
#include <string>
#include <utility>

#include "absl/synchronization/mutex.h"
#include "process/process.h"
#include "store/run_store.h"
#include "worker/task.h"

namespace barge {

// The image references of steps, as pinned in the state store: the first attempt of a step to
// get here resolves the image on its worker (container/runtime.h PinImage) and records it, first
// writer wins (RunStore::PinStepImage); every other attempt, retries and resumes included, runs
// the recorded one. Remembered per run and step.
class ImagePins {
 public:
  explicit ImagePins(RunStore& runs) : runs_(runs) {}
  // Sets task.image to the pinned reference, or (it could not be resolved here, or the store
  // not read) task.image_error to why: the attempt then fails as an infrastructure failure.
  // Does nothing to a task without an image.
  void Pin(const TaskKey& key, ResolvedTask& task);

 private:
  RunStore& runs_;
  absl::Mutex mu_;
  std::map<std::pair<std::string, std::string>, std::string> pinned_ ABSL_GUARDED_BY(mu_);
};

// Runs `spec`, the attempt's process as RunAttempt prepared it, in a container of `task.image`
// (RunAttempt's part for a task with an image): the scratch directory (the working directory)
// and output directory bound read-write, the pipeline directory and each input read-only, all at
// their own paths; the task's variables and nothing else of the worker's environment; its cpu
// and memory as limits; the worker's uid and gid. Afterwards the container is removed, however
// the process ended. Sets `outcome`'s failure class to out_of_memory for a container killed at
// its memory limit, and marks an infrastructure failure when the image could not be had.
ProcessResult RunInContainer(ProcessRunner& runner, const ResolvedTask& task,
                             const AttemptPaths& paths, ProcessSpec spec, const CancelToken& cancel,
                             AttemptOutcome& outcome);

}  // namespace barge

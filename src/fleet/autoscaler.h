// The autoscaler: per queue, as many workers as the queue's ready and running tasks need, packed
// into the queue's worker size, between `min` and `max`; down to `min` (zero by default) once the
// lower demand has lasted `idle`.
//
//   ASSIGN_OR_RETURN(std::vector<QueueScaling> config, LoadAutoscaleConfig("autoscale.yaml"));
//   Autoscaler scaler(store, store, config,
//                     MakeProviders(config, worker_command, launcher, clock), clock);
//   scaler.Tick();   // every second or so
//
// Providers carry out the decision: `local` starts `barge worker` processes on this machine and
// stops them by SIGTERM, which makes a worker drain (stop claiming, finish its tasks) — idle
// workers are picked first, and a busy one is never killed. `command` runs a command template
// with {queue} and {desired} replaced (e.g. the cloud's CLI setting an EC2 fleet's capacity)
// whenever the desired count changes. Both start their processes through a ProcessLauncher
// (process/process.h), without the server's BARGE_TOKEN in their environment.
//
// Thread-safety: Tick() and Status() are serialised internally.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "nlohmann/json.hpp"
#include "process/process.h"
#include "store/fleet_registry.h"
#include "store/telemetry.h"

namespace barge {

struct QueueScaling {
  std::string queue = "default";
  int min = 0;
  int max = 4;
  int64_t idle_ms = 60'000;
  double worker_cpu = 2;
  int64_t worker_memory = int64_t{4} << 30;
  std::string worker_labels;       // --labels of started workers
  std::string provider = "local";  // local | command
  std::string command;             // command: the template
};

// Reads the autoscaler's YAML file:
//   queues:
//     - queue: default          # every key but queue is optional
//       min: 0
//       max: 8
//       idle: 1m
//       worker: {cpu: 2, memory: 4GiB, labels: "arch=arm64"}
//       provider: local         # or command, with
//       command: "aws ec2 modify-fleet --fleet-id fl-1 --target-capacity-specification
//       TotalTargetCapacity={desired}"
// Errors name the file, the line and the key.
absl::StatusOr<std::vector<QueueScaling>> LoadAutoscaleConfig(const std::string& path);

// Workers needed for `load` (one queue's rows): first-fit decreasing of each ready or running
// task into workers of the given size. A task larger than a worker counts one worker of its own.
int64_t WorkersNeeded(const std::vector<TaskLoad>& load, double worker_cpu, int64_t worker_memory);

// Carries out a queue's desired worker count.
class WorkerProvider {
 public:
  virtual ~WorkerProvider() = default;
  // Moves toward `desired` workers. `workers` are the queue's registered workers and `busy` the
  // ids of those holding a task (never to be stopped).
  virtual absl::Status Scale(int desired, const std::vector<WorkerRecord>& workers,
                             const std::vector<std::string>& busy) = 0;
  // Workers this provider has running and not asked to stop.
  virtual int Current() = 0;
  // Asks every worker it started to drain (server shutdown).
  virtual void StopAll() {}
};

// `barge worker` processes on this machine. `worker_argv` is the command line of one worker,
// without --queue/--cpu/--memory/--labels, which come from `q`; logs go to `log_dir`. After a
// worker stopped unasked, it starts none for 10 s of `clock`'s ElapsedMs(). `launcher` and
// `clock` are borrowed and must outlive the provider.
std::unique_ptr<WorkerProvider> NewLocalProvider(const QueueScaling& q,
                                                 std::vector<std::string> worker_argv,
                                                 std::string log_dir, ProcessLauncher& launcher,
                                                 Clock& clock);
// Runs q.command through /bin/sh whenever the desired count changes. `launcher` is borrowed.
std::unique_ptr<WorkerProvider> NewCommandProvider(const QueueScaling& q,
                                                   ProcessLauncher& launcher);

class Autoscaler {
 public:
  // Reads each queue's demand and busy workers from `telemetry` and live workers from `fleet`.
  // `providers` maps each configured queue to its provider. `clock` (borrowed) times the idle
  // periods and paces the load reads.
  Autoscaler(Telemetry& telemetry, FleetRegistry& fleet, std::vector<QueueScaling> queues,
             std::map<std::string, std::unique_ptr<WorkerProvider>> providers, Clock& clock);
  ~Autoscaler();

  // One decision per queue, carried out. Errors name the queue. The queue's load is re-read at
  // most as often as keeps that read under 5% of the time (a million pending tasks take a few
  // hundred ms to sum); between reads, decisions use the last one. Every minute it also
  // publishes each queue's worker size (FleetRegistry::PublishWorkerShapes), against which
  // submissions are checked before any worker runs.
  absl::Status Tick();
  // Per queue: demand, desired, current, bounds, idle time.
  nlohmann::json Status();
  void StopAll();

 private:
  struct QueueState {
    int64_t demand = 0;
    int desired = 0;
    // When demand first fell below the current count, on the clock's ElapsedMs() (0: it has not).
    int64_t lower_since = 0;
    std::string last_error;
  };

  Telemetry& telemetry_;
  FleetRegistry& fleet_;
  std::vector<QueueScaling> queues_;
  std::map<std::string, std::unique_ptr<WorkerProvider>> providers_;
  Clock& clock_;
  absl::Mutex mu_;
  std::map<std::string, QueueState> state_ ABSL_GUARDED_BY(mu_);
  std::vector<TaskLoad> load_ ABSL_GUARDED_BY(mu_);  // the last LoadByQueue()
  Pacer load_pacer_ ABSL_GUARDED_BY(mu_);
  int64_t next_publish_ ABSL_GUARDED_BY(mu_) = 0;  // of the worker sizes (clock_.ElapsedMs())
};

}  // namespace barge

// barge's subcommands. main() calls Main(); each command returns the process exit code:
// 0 success, 1 a run failed, 2 bad input (usage, spec, unknown run), 3 internal error,
// 130 interrupted.
#pragma once

#include <string>
#include <vector>

#include "cli/context.h"
#include "cost/cost.h"

namespace barge {

int Main(int argc, char** argv);

// How a command that starts or re-starts a run (run, resume, retry) follows it.
struct DriveOptions {
  // The local pool's cpu slots: -1, the number of cores; 0, none: the command runs nothing and
  // follows the run while other workers (the fleet's) run its tasks.
  int workers = -1;
  std::string lease = "60s";
  bool detach = false;  // return once the run is created or re-queued; run nothing
  // Ctrl-C cancels the run even where it would only stop this command's own part (see
  // InterruptCancelsRun in cmd_run.cc).
  bool cancel_on_interrupt = false;
};

struct RunOptions {
  std::string pipeline;
  std::vector<std::string> params;
  DriveOptions drive;
  std::string bundle_max = "256MiB";
};

int CmdRun(const Locations& where, const RunOptions& options);
int CmdValidate(const std::string& pipeline, const std::vector<std::string>& params);
int CmdResume(const Locations& where, const std::string& run, const DriveOptions& drive,
              bool failed_only);
struct WorkerCommandOptions {
  double cpu = 0;  // 0: number of cores
  std::string memory;
  std::string lease = "30s";
  std::string drain_timeout = "110s";
  std::string queue = "default";
  std::string labels;
};
int CmdWorker(const Locations& where, const WorkerCommandOptions& options);
int CmdWorkers(const Locations& where, bool json);
int CmdGc(const Locations& where, const std::string& older_than, bool dry_run, bool json);

struct ServeOptions {
  std::string listen = "127.0.0.1:8080";
  std::string token_file;
  std::string pipelines;
  std::string autoscale;
  std::string prices;
  std::string tick;
};
int CmdServe(const Locations& where, const ServeOptions& options);

struct ScheduleCommand {
  std::string action;  // add, list, remove, enable, disable
  std::string name;
  std::string pipeline;
  std::string cron;
  std::string timezone;
  std::string catchup;
  std::string overlap;
  std::vector<std::string> params;
  bool json = false;
};
int CmdSchedule(const Locations& where, const ScheduleCommand& command);

int CmdExec(const Locations& where, const std::string& run, const std::string& step, int64_t index,
            bool keep);

int CmdRuns(const Locations& where, bool json, const RunFilter& filter);
int CmdStatus(const Locations& where, const std::string& run, bool json);
struct TasksOptions {
  std::string run;
  std::string step;
  std::string only;  // a task state, or "" for all
  bool json = false;
  bool attempts = false;  // with --json: each task's attempts
  int64_t limit = -1;
};
int CmdTasks(const Locations& where, const TasksOptions& options);
// follow: keep printing a running attempt's log as it grows, until the attempt ends.
int CmdLogs(const Locations& where, const std::string& run, const std::string& step, int64_t index,
            int attempt, bool follow);
int CmdCancel(const Locations& where, const std::string& run);
// Blocks until the run is no longer running, looking every `every` (a duration); the exit code
// says how it ended, as barge run's does. A store that cannot be reached is waited out.
int CmdWait(const Locations& where, const std::string& run, const std::string& every);
int CmdCost(const Locations& where, const std::string& run, const std::string& prices, bool json);

// The price table: from `flag`, else BARGE_PRICES, else the defaults.
absl::StatusOr<Prices> ResolvePrices(const std::string& flag);

}  // namespace barge

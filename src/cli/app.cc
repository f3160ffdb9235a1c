// The dispatch table: flags for every subcommand, parsed with CLI11.
#include <sys/prctl.h>

#include <CLI/CLI.hpp>
#include <functional>
#include <memory>

#include "cli/commands.h"
#include "common/redact.h"
#include "process/reaper.h"
#include "sql/sql_task.h"

namespace barge {
namespace {

// --state names the state store on every command (--store is the same flag); filters by state
// are --only.
void AddLocations(CLI::App* cmd, Locations& where) {
  cmd->add_option("--state,--store", where.state,
                  "state store: a SQLite path, sqlite:PATH or postgres://USER:PASSWORD@HOST/DB "
                  "(env BARGE_STATE; default .barge/state.db)");
  cmd->add_option("--root", where.root,
                  "data root for outputs and logs (env BARGE_ROOT; default beside the state)");
  cmd->add_option("--scratch", where.scratch,
                  "local directory for attempts' working directories (env BARGE_SCRATCH)");
}

// For the commands that submit runs (run, serve): see bundle/ship.h.
void AddSharedRoot(CLI::App* cmd, Locations& where) {
  cmd->add_flag("--shared-root", where.shared_root,
                "the local --root is mounted at the same path on every worker (NFS); needed to "
                "submit to a shared state store with a local root (env BARGE_SHARED_ROOT=1)");
}

// The flags of the commands that start or re-start a run and follow it (run, resume, retry).
void AddDrive(CLI::App* cmd, DriveOptions& drive, const char* detach_help) {
  cmd->add_option("-w,--workers", drive.workers,
                  "cpu slots of the local pool that runs the run's tasks on this machine "
                  "(default: number of cores); on a shared state store the fleet's workers take "
                  "its tasks too; 0: run nothing here, follow the run while the fleet runs it")
      ->check(CLI::Range(0, 4096));
  cmd->add_flag("--detach", drive.detach, detach_help);
  cmd->add_flag("--cancel-on-interrupt", drive.cancel_on_interrupt,
                "Ctrl-C cancels the run on every worker; by default it does only where this "
                "command created the run or runs it alone (a local state store), and otherwise "
                "stops this command's own tasks, hands them back and leaves the run to the fleet");
  cmd->add_option("--lease", drive.lease, "lease duration of claimed tasks (default 60s)");
}

// A subcommand and what it does once parsed. The flags' values live in the action's closure.
struct Command {
  CLI::App* app = nullptr;
  std::function<int()> action;
};

// The arguments every task-addressing command takes: RUN, and STEP INDEX where asked.
struct TaskArgs {
  std::string run;
  std::string step;
  int64_t index = 0;
};

void AddRunArg(CLI::App* cmd, TaskArgs& args) {
  cmd->add_option("run", args.run, "run id, or 'last'")->required();
}

void AddTaskArgs(CLI::App* cmd, TaskArgs& args) {
  AddRunArg(cmd, args);
  cmd->add_option("step", args.step, "step name")->required();
  cmd->add_option("index", args.index, "task index")->required();
}

// --- commands that start or drive runs ---

Command AddRun(CLI::App& app, Locations& where) {
  auto run = std::make_shared<RunOptions>();
  CLI::App* cmd = app.add_subcommand(
      "run", "run a pipeline and follow it to its end (exit 0 succeeded, 1 failed, 130 cancelled)");
  cmd->add_option("pipeline", run->pipeline, "pipeline YAML file")->required();
  cmd->add_option("-p,--param", run->params, "override a param: NAME=VALUE (repeatable)");
  cmd->add_option(
      "--bundle-max", run->bundle_max,
      "refuse a code bundle (the pipeline's directory) larger than this (default 256MiB)");
  AddDrive(cmd, run->drive, "create and plan the run, print its id and return: workers run it");
  AddLocations(cmd, where);
  AddSharedRoot(cmd, where);
  return {cmd, [&where, run] { return CmdRun(where, *run); }};
}

Command AddValidate(CLI::App& app) {
  auto file = std::make_shared<std::string>();
  auto params = std::make_shared<std::vector<std::string>>();
  CLI::App* cmd = app.add_subcommand("validate", "check a pipeline file without running anything");
  cmd->add_option("pipeline", *file, "pipeline YAML file")->required();
  cmd->add_option("-p,--param", *params, "override a param: NAME=VALUE");
  return {cmd, [file, params] { return CmdValidate(*file, *params); }};
}

// resume (every unfinished task) and retry (failed tasks only).
Command AddResume(CLI::App& app, Locations& where, bool failed_only) {
  auto args = std::make_shared<TaskArgs>();
  auto drive = std::make_shared<DriveOptions>();
  CLI::App* cmd =
      failed_only ? app.add_subcommand(
                        "retry", "re-queue only the failed tasks of a finished run and run them")
                  : app.add_subcommand(
                        "resume",
                        "finish a failed, cancelled or interrupted run: succeeded tasks are kept");
  AddRunArg(cmd, *args);
  AddDrive(cmd, *drive, "re-queue the tasks, print the run's id and return: workers run them");
  AddLocations(cmd, where);
  return {cmd, [&where, args, drive, failed_only] {
            return CmdResume(where, args->run, *drive, failed_only);
          }};
}

Command AddCancel(CLI::App& app, Locations& where) {
  auto args = std::make_shared<TaskArgs>();
  CLI::App* cmd = app.add_subcommand("cancel", "cancel a running run");
  AddRunArg(cmd, *args);
  AddLocations(cmd, where);
  return {cmd, [&where, args] { return CmdCancel(where, args->run); }};
}

Command AddWait(CLI::App& app, Locations& where) {
  auto args = std::make_shared<TaskArgs>();
  auto every = std::make_shared<std::string>("1s");
  CLI::App* cmd = app.add_subcommand(
      "wait", "wait for a run to end; exit 0 if it succeeded, 1 if it failed, 130 if cancelled");
  AddRunArg(cmd, *args);
  cmd->add_option("--every", *every, "how often to look (default 1s)");
  AddLocations(cmd, where);
  return {cmd, [&where, args, every] { return CmdWait(where, args->run, *every); }};
}

Command AddExec(CLI::App& app, Locations& where) {
  auto args = std::make_shared<TaskArgs>();
  auto keep = std::make_shared<bool>(false);
  CLI::App* cmd = app.add_subcommand(
      "exec",
      "re-run one task in isolation, in a fresh directory, with its exact command, "
      "environment and inputs");
  AddTaskArgs(cmd, *args);
  cmd->add_flag("--keep", *keep, "keep the working directory afterwards");
  AddLocations(cmd, where);
  return {cmd, [&where, args, keep] {
            return CmdExec(where, args->run, args->step, args->index, *keep);
          }};
}

// --- commands that look at runs ---

Command AddRuns(CLI::App& app, Locations& where) {
  struct Flags {
    bool json = false;
    int64_t limit = 50;
    std::string pipeline, only;
  };
  auto f = std::make_shared<Flags>();
  CLI::App* cmd = app.add_subcommand("runs", "list runs, newest first");
  cmd->add_flag("--json", f->json, "print a JSON array");
  cmd->add_option("-n,--limit", f->limit, "how many runs (default 50)");
  cmd->add_option("--pipeline", f->pipeline, "only this pipeline's runs");
  cmd->add_option("--only", f->only, "only runs in this state")
      ->check(CLI::IsMember({"running", "succeeded", "failed", "cancelled", "deleting"}));
  AddLocations(cmd, where);
  return {cmd, [&where, f] {
            RunFilter filter{.limit = f->limit};
            if (!f->pipeline.empty()) filter.pipeline = f->pipeline;
            if (!f->only.empty()) filter.state = f->only;
            return CmdRuns(where, f->json, filter);
          }};
}

Command AddStatus(CLI::App& app, Locations& where) {
  auto args = std::make_shared<TaskArgs>();
  auto json = std::make_shared<bool>(false);
  CLI::App* cmd = app.add_subcommand("status", "a run's state and per-step task counts");
  AddRunArg(cmd, *args);
  cmd->add_flag("--json", *json, "print JSON");
  AddLocations(cmd, where);
  return {cmd, [&where, args, json] { return CmdStatus(where, args->run, *json); }};
}

Command AddTasks(CLI::App& app, Locations& where) {
  auto tasks = std::make_shared<TasksOptions>();
  CLI::App* cmd = app.add_subcommand("tasks", "list a run's tasks");
  cmd->add_option("run", tasks->run, "run id, or 'last'")->required();
  cmd->add_option("--step", tasks->step, "only this step");
  cmd->add_option("--only", tasks->only, "only tasks in this state")
      ->check(CLI::IsMember({"pending", "running", "succeeded", "failed", "cancelled"}));
  cmd->add_option("-n,--limit", tasks->limit, "at most this many");
  cmd->add_flag("--json", tasks->json, "print a JSON array");
  cmd->add_flag("--attempts", tasks->attempts,
                "with --json: every attempt of each task (worker, state, reason, times, "
                "cpu, peak memory, log)");
  AddLocations(cmd, where);
  return {cmd, [&where, tasks] { return CmdTasks(where, *tasks); }};
}

Command AddLogs(CLI::App& app, Locations& where) {
  auto args = std::make_shared<TaskArgs>();
  auto attempt = std::make_shared<int>(0);
  auto follow = std::make_shared<bool>(false);
  CLI::App* cmd = app.add_subcommand("logs", "print a task attempt's stdout and stderr");
  AddTaskArgs(cmd, *args);
  cmd->add_option("-a,--attempt", *attempt, "attempt number (default: the latest)");
  cmd->add_flag("-f,--follow", *follow,
                "keep printing the attempt's log as it grows, on whichever worker runs it, "
                "until the attempt ends (waits for a task that has not started)");
  AddLocations(cmd, where);
  return {cmd, [&where, args, attempt, follow] {
            return CmdLogs(where, args->run, args->step, args->index, *attempt, *follow);
          }};
}

Command AddCost(CLI::App& app, Locations& where) {
  auto args = std::make_shared<TaskArgs>();
  auto prices = std::make_shared<std::string>();
  auto json = std::make_shared<bool>(false);
  CLI::App* cmd = app.add_subcommand(
      "cost",
      "what a run cost on spot workers, and what the same work would cost on Fargate, Fargate "
      "Spot, Glue and EMR");
  AddRunArg(cmd, *args);
  cmd->add_option("--prices", *prices,
                  "a JSON price file (env BARGE_PRICES; default: built-in us-east-1 prices)");
  cmd->add_flag("--json", *json, "print JSON");
  AddLocations(cmd, where);
  return {cmd, [&where, args, prices, json] { return CmdCost(where, args->run, *prices, *json); }};
}

// --- the fleet and its upkeep ---

Command AddWorker(CLI::App& app, Locations& where) {
  auto worker = std::make_shared<WorkerCommandOptions>();
  CLI::App* cmd =
      app.add_subcommand("worker",
                         "serve every run's tasks from a shared state store until stopped (a fleet "
                         "member); SIGTERM drains");
  cmd->add_option("--cpu", worker->cpu, "cpu this worker offers (default: its cores)");
  cmd->add_option("--memory", worker->memory, "memory it offers, e.g. 8GiB (default: all)");
  cmd->add_option("--lease", worker->lease, "lease duration of claimed tasks (default 30s)");
  cmd->add_option("--queue", worker->queue,
                  "the queue to take tasks from: steps name it with `queue:` (default "
                  "\"default\")");
  cmd->add_option("--labels", worker->labels,
                  "labels this worker offers, k=v,k2=v2, added to its own arch=... and "
                  "os=linux; it takes only tasks whose step `labels:` it has all of");
  cmd->add_option("--drain-timeout", worker->drain_timeout,
                  "on SIGTERM, how long running tasks may take to finish (default 110s)");
  AddLocations(cmd, where);
  return {cmd, [&where, worker] { return CmdWorker(where, *worker); }};
}

Command AddWorkers(CLI::App& app, Locations& where) {
  auto json = std::make_shared<bool>(false);
  CLI::App* cmd = app.add_subcommand("workers", "list live workers");
  cmd->add_flag("--json", *json, "print a JSON array");
  AddLocations(cmd, where);
  return {cmd, [&where, json] { return CmdWorkers(where, *json); }};
}

Command AddGc(CLI::App& app, Locations& where) {
  struct Flags {
    std::string older_than;
    bool dry_run = false, json = false;
  };
  auto f = std::make_shared<Flags>();
  CLI::App* cmd = app.add_subcommand(
      "gc",
      "delete finished runs older than a cutoff: their outputs and logs (local or S3), then "
      "their records; running runs are never touched");
  cmd->add_option("--older-than", f->older_than,
                  "collect runs that finished longer ago than this (e.g. 30d, 12h, 0s)")
      ->required();
  cmd->add_flag("--dry-run", f->dry_run, "only list what would be deleted, and its size");
  cmd->add_flag("--json", f->json, "print JSON");
  AddLocations(cmd, where);
  return {cmd, [&where, f] { return CmdGc(where, f->older_than, f->dry_run, f->json); }};
}

Command AddServe(CLI::App& app, Locations& where) {
  auto serve = std::make_shared<ServeOptions>();
  CLI::App* cmd = app.add_subcommand(
      "serve",
      "the HTTP API and web UI, schedules, the lease reaper and the autoscaler, in one process");
  cmd->add_option("--listen", serve->listen, "ADDRESS:PORT to listen on (default 127.0.0.1:8080)");
  cmd->add_option("--token-file", serve->token_file,
                  "file holding the API's bearer token (else env BARGE_TOKEN, else a new "
                  "token written to serve.token beside the state)");
  cmd->add_option("--pipelines", serve->pipelines,
                  "directory of registered pipelines (*.yaml): submitted by name, and "
                  "their schedule: keys fired");
  cmd->add_option("--autoscale", serve->autoscale,
                  "autoscaler YAML: per queue min, max, idle, worker size and provider");
  cmd->add_option("--prices", serve->prices, "a JSON price file for run costs");
  cmd->add_option("--tick", serve->tick,
                  "how often schedules, leases and the autoscaler are looked at (default 1s)");
  AddLocations(cmd, where);
  AddSharedRoot(cmd, where);
  return {cmd, [&where, serve] { return CmdServe(where, *serve); }};
}

Command AddSchedule(CLI::App& app, Locations& where) {
  auto schedule = std::make_shared<ScheduleCommand>();
  CLI::App* cmd = app.add_subcommand("schedule", "the schedules `barge serve` fires");
  cmd->require_subcommand(1);
  CLI::App* add = cmd->add_subcommand(
      "add", "create or replace a schedule of a pipeline file (its spec is frozen now)");
  add->add_option("pipeline", schedule->pipeline, "pipeline YAML file")->required();
  add->add_option("--name", schedule->name, "schedule name (default: the pipeline's name)");
  add->add_option("--cron", schedule->cron,
                  "5-field cron or @hourly/@daily/@weekly/@monthly/@yearly (default: the "
                  "pipeline's schedule:)");
  add->add_option("--timezone", schedule->timezone, "IANA time zone (default UTC)");
  add->add_option("--catchup", schedule->catchup,
                  "slots missed while no server ran: latest (default), all or none");
  add->add_option("--overlap", schedule->overlap,
                  "when the previous run is still going: skip (default), queue or allow");
  add->add_option("-p,--param", schedule->params, "override a param: NAME=VALUE");
  AddLocations(add, where);
  CLI::App* list = cmd->add_subcommand("list", "list schedules and their next slot");
  list->add_flag("--json", schedule->json, "print a JSON array");
  AddLocations(list, where);
  for (auto [name, help] : {std::pair{"remove", "delete a schedule (its past runs stay)"},
                            std::pair{"enable", "resume firing a schedule"},
                            std::pair{"disable", "stop firing a schedule"}}) {
    CLI::App* c = cmd->add_subcommand(name, help);
    c->add_option("name", schedule->name, "schedule name")->required();
    AddLocations(c, where);
  }
  return {cmd, [&where, cmd, schedule] {
            for (CLI::App* c : cmd->get_subcommands()) {
              if (c->parsed()) schedule->action = c->get_name();
            }
            return CmdSchedule(where, *schedule);
          }};
}

// Prints a parse error (masked: CLI11 quotes the arguments it could not place, a store URL with
// its password among them) and returns the exit code.
int ParseFailure(const CLI::ParseError& e, int argc, char** argv) {
  std::string message = MaskSecretsInText(e.what());
  // "barge --state URL runs": options belong to the command, after its name.
  if (argc > 1 && std::string_view(argv[1]).starts_with("-") &&
      dynamic_cast<const CLI::ExtrasError*>(&e) != nullptr) {
    message += " (options go after the command: barge COMMAND [OPTIONS])";
  }
  std::fprintf(stderr, "barge: error: %s\nRun with --help for more information.\n",
               message.c_str());
  return 2;
}

}  // namespace

int Main(int argc, char** argv) {
  CLI::App app{
      "barge: batch data pipelines of shell steps, on a laptop or a fleet of spot "
      "machines"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "barge 0.1.0");
  Locations where;
  // In the order --help lists them.
  const std::vector<Command> commands = {
      AddRun(app, where),
      AddValidate(app),
      AddRuns(app, where),
      AddStatus(app, where),
      AddTasks(app, where),
      AddLogs(app, where),
      AddResume(app, where, false),
      AddResume(app, where, true),
      AddCancel(app, where),
      AddWait(app, where),
      AddExec(app, where),
      AddWorker(app, where),
      AddCost(app, where),
      AddWorkers(app, where),
      AddGc(app, where),
      AddServe(app, where),
      AddSchedule(app, where),
  };

  // Internal: the child process of a SQL task (see sql/sql_task.h). Not shown in --help.
  std::string sql_spec;
  CLI::App* sql_cmd = app.add_subcommand("__sql", "");
  sql_cmd->group("");
  sql_cmd->add_option("spec", sql_spec)->required();
  // Internal: kills a barge process's tasks when it dies (see process/reaper.h). Not shown.
  CLI::App* reaper_cmd = app.add_subcommand("__reaper", "");
  reaper_cmd->group("");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help
    return ParseFailure(e, argc, argv);
  }

  if (sql_cmd->parsed()) return RunSqlTask(sql_spec);  // a task: it holds no secret of barge's
  // Every other barge process may hold the token or the store's password in its environment,
  // and runs tasks as its own user. Not dumpable, its /proc/<pid>/environ and mem are readable
  // by root only, not by other processes of its user (cmdline stays readable by all, as ever).
  // A task is dumpable again after its execve.
  ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  if (reaper_cmd->parsed()) return RunReaper(kReaperFd);
  for (const Command& c : commands) {
    if (c.app->parsed()) return c.action();
  }
  return 2;
}

}  // namespace barge

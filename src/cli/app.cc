// The dispatch table: flags for every subcommand, parsed with CLI11.
#include <sys/prctl.h>

#include <CLI/CLI.hpp>

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

void AddDrive(CLI::App* cmd, DriveOptions& drive) {
  cmd->add_option("-w,--workers", drive.workers,
                  "concurrent cpu slots of the local pool (default: number of cores)")
      ->check(CLI::Range(1, 4096));
  cmd->add_option("--lease", drive.lease, "lease duration of claimed tasks (default 60s)");
}

}  // namespace

int Main(int argc, char** argv) {
  CLI::App app{
      "barge: batch data pipelines of shell steps, on a laptop or a fleet of spot "
      "machines"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "barge 0.1.0");
  Locations where;

  RunOptions run;
  CLI::App* run_cmd = app.add_subcommand("run", "run a pipeline to completion on this machine");
  run_cmd->add_option("pipeline", run.pipeline, "pipeline YAML file")->required();
  run_cmd->add_option("-p,--param", run.params, "override a param: NAME=VALUE (repeatable)");
  run_cmd->add_flag("--detach", run.detach, "create and plan the run, print its id and return");
  AddDrive(run_cmd, run.drive);
  AddLocations(run_cmd, where);

  std::string validate_file;
  std::vector<std::string> validate_params;
  CLI::App* validate_cmd =
      app.add_subcommand("validate", "check a pipeline file without running anything");
  validate_cmd->add_option("pipeline", validate_file, "pipeline YAML file")->required();
  validate_cmd->add_option("-p,--param", validate_params, "override a param: NAME=VALUE");

  bool json = false;
  int64_t limit = 50;
  CLI::App* runs_cmd = app.add_subcommand("runs", "list runs, newest first");
  runs_cmd->add_flag("--json", json, "print a JSON array");
  runs_cmd->add_option("-n,--limit", limit, "how many runs (default 50)");
  std::string runs_pipeline, runs_only;
  runs_cmd->add_option("--pipeline", runs_pipeline, "only this pipeline's runs");
  runs_cmd->add_option("--only", runs_only, "only runs in this state")
      ->check(CLI::IsMember({"running", "succeeded", "failed", "cancelled", "deleting"}));
  AddLocations(runs_cmd, where);

  std::string run_id;
  CLI::App* status_cmd = app.add_subcommand("status", "a run's state and per-step task counts");
  status_cmd->add_option("run", run_id, "run id, or 'last'")->required();
  status_cmd->add_flag("--json", json, "print JSON");
  AddLocations(status_cmd, where);

  TasksOptions tasks;
  CLI::App* tasks_cmd = app.add_subcommand("tasks", "list a run's tasks");
  tasks_cmd->add_option("run", tasks.run, "run id, or 'last'")->required();
  tasks_cmd->add_option("--step", tasks.step, "only this step");
  tasks_cmd->add_option("--only", tasks.only, "only tasks in this state")
      ->check(CLI::IsMember({"pending", "running", "succeeded", "failed", "cancelled", "cached"}));
  tasks_cmd->add_option("-n,--limit", tasks.limit, "at most this many");
  tasks_cmd->add_flag("--json", tasks.json, "print a JSON array");
  tasks_cmd->add_flag("--attempts", tasks.attempts,
                      "with --json: every attempt of each task (worker, state, reason, times, "
                      "cpu, peak memory, log)");
  AddLocations(tasks_cmd, where);

  std::string step;
  int64_t index = 0;
  int attempt = 0;
  CLI::App* logs_cmd = app.add_subcommand("logs", "print a task attempt's stdout and stderr");
  logs_cmd->add_option("run", run_id, "run id, or 'last'")->required();
  logs_cmd->add_option("step", step, "step name")->required();
  logs_cmd->add_option("index", index, "task index")->required();
  logs_cmd->add_option("-a,--attempt", attempt, "attempt number (default: the latest)");
  AddLocations(logs_cmd, where);

  DriveOptions drive;
  CLI::App* resume_cmd = app.add_subcommand(
      "resume", "finish a failed, cancelled or interrupted run: succeeded tasks are kept");
  resume_cmd->add_option("run", run_id, "run id, or 'last'")->required();
  AddDrive(resume_cmd, drive);
  AddLocations(resume_cmd, where);

  CLI::App* retry_cmd =
      app.add_subcommand("retry", "re-queue only the failed tasks of a finished run and run them");
  retry_cmd->add_option("run", run_id, "run id, or 'last'")->required();
  AddDrive(retry_cmd, drive);
  AddLocations(retry_cmd, where);

  CLI::App* cancel_cmd = app.add_subcommand("cancel", "cancel a running run");
  cancel_cmd->add_option("run", run_id, "run id, or 'last'")->required();
  AddLocations(cancel_cmd, where);

  std::string wait_every = "1s";
  CLI::App* wait_cmd = app.add_subcommand(
      "wait", "wait for a run to end; exit 0 if it succeeded, 1 if it failed, 130 if cancelled");
  wait_cmd->add_option("run", run_id, "run id, or 'last'")->required();
  wait_cmd->add_option("--every", wait_every, "how often to look (default 1s)");
  AddLocations(wait_cmd, where);

  bool keep = false;
  CLI::App* exec_cmd = app.add_subcommand(
      "exec",
      "re-run one task in isolation, in a fresh directory, with its exact command, "
      "environment and inputs");
  exec_cmd->add_option("run", run_id, "run id, or 'last'")->required();
  exec_cmd->add_option("step", step, "step name")->required();
  exec_cmd->add_option("index", index, "task index")->required();
  exec_cmd->add_flag("--keep", keep, "keep the working directory afterwards");
  AddLocations(exec_cmd, where);

  WorkerCommandOptions worker;
  CLI::App* worker_cmd =
      app.add_subcommand("worker",
                         "serve every run's tasks from a shared state store until stopped (a fleet "
                         "member); SIGTERM drains");
  worker_cmd->add_option("--cpu", worker.cpu, "cpu this worker offers (default: its cores)");
  worker_cmd->add_option("--memory", worker.memory, "memory it offers, e.g. 8GiB (default: all)");
  worker_cmd->add_option("--lease", worker.lease, "lease duration of claimed tasks (default 30s)");
  worker_cmd->add_option("--queue", worker.queue,
                         "the queue to take tasks from: steps name it with `queue:` (default "
                         "\"default\")");
  worker_cmd->add_option("--labels", worker.labels,
                         "labels this worker offers, k=v,k2=v2, added to its own arch=... and "
                         "os=linux; it takes only tasks whose step `labels:` it has all of");
  worker_cmd->add_option("--drain-timeout", worker.drain_timeout,
                         "on SIGTERM, how long running tasks may take to finish (default 110s)");
  AddLocations(worker_cmd, where);

  std::string prices;
  CLI::App* cost_cmd = app.add_subcommand(
      "cost",
      "what a run cost on spot workers, and what the same work would cost on Fargate, Fargate "
      "Spot, Glue and EMR");
  cost_cmd->add_option("run", run_id, "run id, or 'last'")->required();
  cost_cmd->add_option("--prices", prices,
                       "a JSON price file (env BARGE_PRICES; default: built-in us-east-1 prices)");
  cost_cmd->add_flag("--json", json, "print JSON");
  AddLocations(cost_cmd, where);

  CLI::App* workers_cmd = app.add_subcommand("workers", "list live workers");
  workers_cmd->add_flag("--json", json, "print a JSON array");
  AddLocations(workers_cmd, where);

  std::string older_than;
  bool dry_run = false;
  CLI::App* gc_cmd = app.add_subcommand(
      "gc",
      "delete finished runs older than a cutoff: their outputs and logs (local or S3), then "
      "their records; running runs are never touched");
  gc_cmd
      ->add_option("--older-than", older_than,
                   "collect runs that finished longer ago than this (e.g. 30d, 12h, 0s)")
      ->required();
  gc_cmd->add_flag("--dry-run", dry_run, "only list what would be deleted, and its size");
  gc_cmd->add_flag("--json", json, "print JSON");
  AddLocations(gc_cmd, where);

  ServeOptions serve;
  CLI::App* serve_cmd = app.add_subcommand(
      "serve",
      "the HTTP API and web UI, schedules, the lease reaper and the autoscaler, in one process");
  serve_cmd->add_option("--listen", serve.listen,
                        "ADDRESS:PORT to listen on (default 127.0.0.1:8080)");
  serve_cmd->add_option("--token-file", serve.token_file,
                        "file holding the API's bearer token (else env BARGE_TOKEN, else a new "
                        "token written to serve.token beside the state)");
  serve_cmd->add_option("--pipelines", serve.pipelines,
                        "directory of registered pipelines (*.yaml): submitted by name, and "
                        "their schedule: keys fired");
  serve_cmd->add_option("--autoscale", serve.autoscale,
                        "autoscaler YAML: per queue min, max, idle, worker size and provider");
  serve_cmd->add_option("--prices", serve.prices, "a JSON price file for run costs");
  serve_cmd->add_option(
      "--tick", serve.tick,
      "how often schedules, leases and the autoscaler are looked at (default 1s)");
  AddLocations(serve_cmd, where);

  ScheduleCommand schedule;
  CLI::App* schedule_cmd = app.add_subcommand("schedule", "the schedules `barge serve` fires");
  schedule_cmd->require_subcommand(1);
  CLI::App* sched_add = schedule_cmd->add_subcommand(
      "add", "create or replace a schedule of a pipeline file (its spec is frozen now)");
  sched_add->add_option("pipeline", schedule.pipeline, "pipeline YAML file")->required();
  sched_add->add_option("--name", schedule.name, "schedule name (default: the pipeline's name)");
  sched_add->add_option("--cron", schedule.cron,
                        "5-field cron or @hourly/@daily/@weekly/@monthly/@yearly (default: the "
                        "pipeline's schedule:)");
  sched_add->add_option("--timezone", schedule.timezone, "IANA time zone (default UTC)");
  sched_add->add_option("--catchup", schedule.catchup,
                        "slots missed while no server ran: latest (default), all or none");
  sched_add->add_option("--overlap", schedule.overlap,
                        "when the previous run is still going: skip (default), queue or allow");
  sched_add->add_option("-p,--param", schedule.params, "override a param: NAME=VALUE");
  AddLocations(sched_add, where);
  CLI::App* sched_list = schedule_cmd->add_subcommand("list", "list schedules and their next slot");
  sched_list->add_flag("--json", schedule.json, "print a JSON array");
  AddLocations(sched_list, where);
  std::vector<CLI::App*> sched_by_name;
  for (auto [name, help] : {std::pair{"remove", "delete a schedule (its past runs stay)"},
                            std::pair{"enable", "resume firing a schedule"},
                            std::pair{"disable", "stop firing a schedule"}}) {
    CLI::App* c = schedule_cmd->add_subcommand(name, help);
    c->add_option("name", schedule.name, "schedule name")->required();
    AddLocations(c, where);
    sched_by_name.push_back(c);
  }

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
    // CLI11 quotes the arguments it could not place, a store URL with its password among them.
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

  if (sql_cmd->parsed()) return RunSqlTask(sql_spec);  // a task: it holds no secret of barge's
  // Every other barge process may hold the token or the store's password in its environment,
  // and runs tasks as its own user. Not dumpable, its /proc/<pid>/environ and mem are readable
  // by root only, not by other processes of its user (cmdline stays readable by all, as ever).
  // A task is dumpable again after its execve.
  ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  if (reaper_cmd->parsed()) return RunReaper(kReaperFd);
  if (run_cmd->parsed()) return CmdRun(where, run);
  if (worker_cmd->parsed()) return CmdWorker(where, worker);
  if (workers_cmd->parsed()) return CmdWorkers(where, json);
  if (gc_cmd->parsed()) return CmdGc(where, older_than, dry_run, json);
  if (validate_cmd->parsed()) return CmdValidate(validate_file, validate_params);
  if (runs_cmd->parsed()) {
    RunFilter filter{.limit = limit};
    if (!runs_pipeline.empty()) filter.pipeline = runs_pipeline;
    if (!runs_only.empty()) filter.state = runs_only;
    return CmdRuns(where, json, filter);
  }
  if (status_cmd->parsed()) return CmdStatus(where, run_id, json);
  if (tasks_cmd->parsed()) return CmdTasks(where, tasks);
  if (logs_cmd->parsed()) return CmdLogs(where, run_id, step, index, attempt);
  if (resume_cmd->parsed()) return CmdResume(where, run_id, drive, /*failed_only=*/false);
  if (retry_cmd->parsed()) return CmdResume(where, run_id, drive, /*failed_only=*/true);
  if (cancel_cmd->parsed()) return CmdCancel(where, run_id);
  if (wait_cmd->parsed()) return CmdWait(where, run_id, wait_every);
  if (cost_cmd->parsed()) return CmdCost(where, run_id, prices, json);
  if (serve_cmd->parsed()) return CmdServe(where, serve);
  if (schedule_cmd->parsed()) {
    for (CLI::App* c : schedule_cmd->get_subcommands()) {
      if (c->parsed()) schedule.action = c->get_name();
    }
    return CmdSchedule(where, schedule);
  }
  if (exec_cmd->parsed()) return CmdExec(where, run_id, step, index, keep);
  return 2;
}

}  // namespace barge

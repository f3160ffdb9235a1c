// The HTTP JSON API of `barge serve`, independent of the HTTP library: a table of routes, each a
// method, a path pattern and a handler, behind one bearer-token check. server.cc feeds it requests
// from cpp-httplib; tests may call Handle() directly or go through a real socket.
//
//   Api api(store, store, store, engine, {.token = token, .root = root});
//   HttpReply reply = api.Handle({.method = "GET", .path = "/api/runs", .authorization = ...});
//
// Every route but GET /api/health requires "Authorization: Bearer <token>" (compared in constant
// time). Errors are JSON, {"error": {"code": "not_found", "message": "..."}}, with the HTTP status
// from HttpStatusFor(). Request bodies are strict: malformed JSON or an unknown field is a 400
// that names it. No response carries a secret: the token, and any secret the Redactor knows, are
// masked in every body, in the raw strings before JSON encoding, and in any slice of a log.
//
// Thread-safety: Handle() may be called from several threads at once if the store is safe so.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "bundle/ship.h"
#include "common/clock.h"
#include "common/redact.h"
#include "cost/cost.h"
#include "engine/engine.h"
#include "nlohmann/json.hpp"
#include "spec/pipeline.h"
#include "store/fleet_registry.h"
#include "store/run_store.h"
#include "store/schedule_store.h"

namespace barge {

// A request to the API. (Not named HttpRequest: objstore/http.h has that name for the S3
// client's requests, and two classes of one name break the one-definition rule.)
struct ApiRequest {
  std::string method;
  std::string path;
  std::map<std::string, std::string> query;
  std::string body;
  std::string authorization;  // the Authorization header, as sent
};

// The next part of a body too large to build in memory: appends it to `out` and returns whether
// more follows. An error ends the response early (the client sees a truncated body).
using BodyStream = std::function<absl::StatusOr<bool>(std::string& out)>;

struct HttpReply {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  BodyStream stream;  // when set, the body is this stream's parts and `body` is unused
  // A JSON reply before encoding, so that secrets are masked in its strings' raw bytes (a secret
  // holding `"` or `\` looks different once escaped). Encoded into `body` by Api::Handle().
  std::optional<nlohmann::json> json;
  // The handler masked `body` (or the stream's parts) itself, run's secrets included: Handle()
  // leaves it alone.
  bool masked = false;
};

// The HTTP status of an error: 400 invalid argument, 401 unauthenticated, 403 permission denied,
// 404 not found, 409 already exists or failed precondition, 503 unavailable, else 500.
int HttpStatusFor(const absl::Status& status);

struct ApiOptions {
  std::string token;          // required on every route but the health check
  std::string root;           // data root of runs submitted through the API
  std::string pipelines_dir;  // registered pipelines: <dir>/*.yaml, by pipeline name ("": none)
  // How a submitted run is shipped (bundle/ship.h); nullopt: not at all (tests of the API alone).
  std::optional<ShipOptions> ship;
  Prices prices = DefaultPrices();
  Redactor redact;
  // The share of the time a polled run's task counts may take to count (see PacedCounts).
  double count_share = 0.05;
  // Extra read-only views wired in by the server (autoscaler state, metrics text).
  std::function<nlohmann::json()> autoscaler_status;
  std::function<std::string()> metrics_text;
  // Times durations (the paced counts); null: the system's. Borrowed; must outlive the Api.
  Clock* clock = nullptr;
};

class Api {
 public:
  // Shows and steers runs in `runs` (through `engine` to start them), schedules in `schedules`
  // and workers in `fleet`; usually one StateStore for all three. All must outlive the Api.
  Api(RunStore& runs, ScheduleStore& schedules, FleetRegistry& fleet, Engine& engine,
      ApiOptions options);

  HttpReply Handle(const ApiRequest& request);

  struct RouteInfo {
    std::string method;
    std::string pattern;  // "/api/runs/{run}/tasks/{step}/{index}"
    bool needs_token;
  };
  // Every route, so a test can check that each one refuses a missing or wrong token.
  std::vector<RouteInfo> Routes() const;

  // Whether `authorization` carries the token ("Bearer <token>"), in constant time.
  bool Authorized(const std::string& authorization) const;

 private:
  using Params = std::map<std::string, std::string>;
  // A route's handler: the request and the path's captures ("run" for "{run}") to its reply,
  // before secrets are masked and JSON encoded. An error becomes an error reply.
  using Handler = absl::StatusOr<HttpReply> (Api::*)(const ApiRequest&, const Params&);
  struct Route {
    std::string method;
    std::vector<std::string> segments;  // "{name}" captures one segment
    std::string pattern;
    bool needs_token;
    Handler handler;
  };
  void Add(const std::string& method, const std::string& pattern, bool needs_token,
           Handler handler);
  // The route's reply, before secrets are masked and JSON encoded.
  HttpReply Dispatch(const ApiRequest& request);
  // barge's own secrets and the run's (its pipeline's secret values; if its spec no longer
  // parses, its secret params), for masking what is shown of the run.
  std::shared_ptr<const Redactor> RedactorFor(const std::string& run_id);

  // The handlers, in the order of the route table (see the constructor for each one's route).
  // The store's schema version, without a token: whether the server is up.
  absl::StatusOr<HttpReply> Health(const ApiRequest& req, const Params& p);
  // A page of runs (limit, offset, state, pipeline in the query).
  absl::StatusOr<HttpReply> ListRuns(const ApiRequest& req, const Params& p);
  // Creates and starts a run of {"pipeline" or "spec", "params"}.
  absl::StatusOr<HttpReply> SubmitRun(const ApiRequest& req, const Params& p);
  // A run with its steps and their task counts.
  absl::StatusOr<HttpReply> GetRun(const ApiRequest& req, const Params& p);
  // Cancels a run still going; FailedPrecondition for one already finished.
  absl::StatusOr<HttpReply> CancelRun(const ApiRequest& req, const Params& p);
  // Re-queues a run's failed and cancelled tasks (barge resume).
  absl::StatusOr<HttpReply> ResumeRun(const ApiRequest& req, const Params& p);
  // Re-queues a finished run's failed tasks (barge retry).
  absl::StatusOr<HttpReply> RetryRun(const ApiRequest& req, const Params& p);
  // A page of a run's tasks (limit, offset, step, state in the query).
  absl::StatusOr<HttpReply> ListTasks(const ApiRequest& req, const Params& p);
  // A task with its attempts.
  absl::StatusOr<HttpReply> GetTask(const ApiRequest& req, const Params& p);
  // An attempt's log, whole, its `tail`, or `offset`/`length`: only that range (plus a margin of
  // the longest secret) is read, redacted as Redactor::Slice says, and streamed past 1 MB.
  absl::StatusOr<HttpReply> GetLog(const ApiRequest& req, const Params& p);
  // A run's attempts as rows of a Gantt chart, touching bars merged past 20,000.
  absl::StatusOr<HttpReply> Timeline(const ApiRequest& req, const Params& p);
  // A run's events.
  absl::StatusOr<HttpReply> ListEvents(const ApiRequest& req, const Params& p);
  // What a run cost, from its attempts and the workers' prices.
  absl::StatusOr<HttpReply> RunCost(const ApiRequest& req, const Params& p);
  // The workers the fleet knows.
  absl::StatusOr<HttpReply> ListWorkers(const ApiRequest& req, const Params& p);
  // The registered pipelines, their secret params masked.
  absl::StatusOr<HttpReply> ListPipelines(const ApiRequest& req, const Params& p);
  // Every schedule.
  absl::StatusOr<HttpReply> ListSchedules(const ApiRequest& req, const Params& p);
  // A new schedule of a pipeline; AlreadyExists if one has its name.
  absl::StatusOr<HttpReply> CreateSchedule(const ApiRequest& req, const Params& p);
  // A schedule with its last 50 fires.
  absl::StatusOr<HttpReply> GetSchedule(const ApiRequest& req, const Params& p);
  // Changes the fields of a schedule the body names.
  absl::StatusOr<HttpReply> UpdateSchedule(const ApiRequest& req, const Params& p);
  // Deletes a schedule; NotFound if there is none of that name.
  absl::StatusOr<HttpReply> DeleteSchedule(const ApiRequest& req, const Params& p);
  // The autoscaler's state, as the server's view gives it (no queues without one).
  absl::StatusOr<HttpReply> Autoscaler(const ApiRequest& req, const Params& p);
  // The Prometheus metrics text.
  absl::StatusOr<HttpReply> Metrics(const ApiRequest& req, const Params& p);

  // A run's task counts, counted again at once when the run or one of its steps changed state
  // since the last count, else at most as often as keeps counting under 5% of the time (a
  // million-task run takes a few hundred ms to count, and every open browser polls it).
  absl::StatusOr<std::vector<StepCounts>> PacedCounts(const RunRecord& run,
                                                      const std::vector<StepRecord>& steps);
  // Re-queues the run's failed tasks (and, unless `failed_only`, its cancelled ones); the body
  // must be empty or {}.
  absl::StatusOr<HttpReply> Requeue(const ApiRequest& req, const std::string& id, bool failed_only);
  // Creates a schedule (`create`) or changes the one named `name` from the body's fields.
  absl::StatusOr<HttpReply> PutSchedule(const ApiRequest& req, const std::string& name,
                                        bool create);

  // The registered pipeline files (none without a pipelines_dir).
  absl::StatusOr<std::vector<std::string>> PipelineFiles();
  // The pipeline a request names: {"pipeline": a registered name} or {"spec": YAML text}.
  absl::StatusOr<Pipeline> PipelineFrom(const nlohmann::json& body, const ParamOverrides& params);

  RunStore& runs_;
  ScheduleStore& schedules_;
  FleetRegistry& fleet_;
  Engine& engine_;
  ApiOptions options_;
  SystemClock system_clock_;
  Clock& clock_;
  std::vector<Route> routes_;

  struct CachedCounts {
    explicit CachedCounts(double share) : pacer(share) {}
    std::string states;  // the run's and its steps' states when counted
    std::vector<StepCounts> counts;
    Pacer pacer;
  };
  absl::Mutex counts_mu_;
  std::map<std::string, CachedCounts> counts_ ABSL_GUARDED_BY(counts_mu_);  // by run id
};

}  // namespace barge

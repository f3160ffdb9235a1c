#include "server/api.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <charconv>
#include <filesystem>

#include "common/redact.h"
#include "common/status.h"
#include "common/strings.h"
#include "common/text.h"
#include "common/units.h"
#include "schedule/cron.h"
#include "schedule/scheduler.h"
#include "server/timeline.h"
#include "spec/pipeline.h"
#include "views/run_views.h"

namespace barge {
namespace {

constexpr int64_t kMaxPage = 10'000;

// Encoded by Api::Handle() once its strings are redacted.
HttpReply JsonReply(nlohmann::json j, int status = 200) {
  return {.status = status, .json = std::move(j)};
}

const char* ErrorCode(int status) {
  switch (status) {
    case 400:
      return "bad_request";
    case 401:
      return "unauthorized";
    case 403:
      return "forbidden";
    case 404:
      return "not_found";
    case 405:
      return "method_not_allowed";
    case 409:
      return "conflict";
    case 503:
      return "unavailable";
    default:
      return "internal";
  }
}

HttpReply ErrorReply(int status, const std::string& message) {
  return JsonReply({{"error", {{"code", ErrorCode(status)}, {"message", message}}}}, status);
}

std::vector<std::string> Segments(std::string_view path) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    if (j > i) out.emplace_back(path.substr(i, j - i));
    i = j + 1;
  }
  return out;
}

// A JSON object body whose every field is one of `allowed`.
absl::StatusOr<nlohmann::json> ParseBody(const ApiRequest& req,
                                         const std::vector<std::string>& allowed) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(req.body.empty() ? "{}" : req.body);
  } catch (const nlohmann::json::parse_error& e) {
    return absl::InvalidArgumentError(Cat("malformed JSON body: ", e.what()));
  }
  if (!j.is_object()) return absl::InvalidArgumentError("the body must be a JSON object");
  for (const auto& [key, value] : j.items()) {
    if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
      return absl::InvalidArgumentError(
          Cat("unknown field \"", key, "\" (allowed: ", Join(allowed, ", "), ")"));
    }
  }
  return j;
}

absl::StatusOr<std::string> StringField(const nlohmann::json& body, const std::string& key,
                                        const std::string& fallback = "") {
  if (!body.contains(key) || body[key].is_null()) return fallback;
  if (!body[key].is_string()) {
    return absl::InvalidArgumentError(Cat("field \"", key, "\" must be a string"));
  }
  return body[key].get<std::string>();
}

// params: {"k": "v"}; numbers and booleans are taken as their text.
absl::StatusOr<ParamOverrides> ParamsField(const nlohmann::json& body) {
  ParamOverrides out;
  if (!body.contains("params") || body["params"].is_null()) return out;
  if (!body["params"].is_object()) {
    return absl::InvalidArgumentError("field \"params\" must be an object of strings");
  }
  for (const auto& [k, v] : body["params"].items()) {
    if (v.is_string()) {
      out[k] = v.get<std::string>();
    } else if (v.is_number() || v.is_boolean()) {
      out[k] = DumpJson(v);
    } else {
      return absl::InvalidArgumentError(Cat("param \"", k, "\" must be a string"));
    }
  }
  return out;
}

absl::StatusOr<int64_t> QueryInt(const ApiRequest& req, const std::string& name, int64_t fallback,
                                 int64_t lo, int64_t hi) {
  auto it = req.query.find(name);
  if (it == req.query.end() || it->second.empty()) return fallback;
  int64_t v = 0;
  const std::string& s = it->second;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || v < lo || v > hi) {
    return absl::InvalidArgumentError(
        Cat("query parameter ", name, "=", s, ": expected an integer from ", lo, " to ", hi));
  }
  return v;
}

std::string QueryString(const ApiRequest& req, const std::string& name) {
  auto it = req.query.find(name);
  return it == req.query.end() ? "" : it->second;
}

absl::StatusOr<int64_t> IndexParam(const std::string& text) {
  int64_t v = -1;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || v < 0) {
    return absl::InvalidArgumentError(Cat("task index \"", text, "\" is not a number"));
  }
  return v;
}

std::array<unsigned char, SHA256_DIGEST_LENGTH> Sha256(std::string_view s) {
  std::array<unsigned char, SHA256_DIGEST_LENGTH> out{};
  SHA256(reinterpret_cast<const unsigned char*>(s.data()), s.size(), out.data());
  return out;
}

// How many raw bytes of a log one part of a streamed reply reads and holds.
constexpr int64_t kLogChunk = 1 << 20;

// The length of the longest prefix of `s` that does not end inside a UTF-8 sequence (which the
// next part completes).
size_t WholeUtf8Prefix(std::string_view s) {
  for (size_t back = 1; back <= std::min<size_t>(4, s.size()); ++back) {
    auto c = static_cast<unsigned char>(s[s.size() - back]);
    if ((c & 0xC0) == 0x80) continue;  // a continuation byte
    size_t need = c < 0x80           ? 1
                  : (c >> 5) == 0x6  ? 2
                  : (c >> 4) == 0xE  ? 3
                  : (c >> 3) == 0x1E ? 4
                                     : 1;
    return need > back ? s.size() - back : s.size();
  }
  return s.size();
}

// `text` as the inside of a JSON string (invalid UTF-8 shows as U+FFFD).
std::string JsonStringBody(std::string text) {
  std::string quoted = DumpJson(nlohmann::json(std::move(text)));
  return quoted.substr(1, quoted.size() - 2);
}

// A log reply's body in parts: `head`, then bytes [from, to) of the log redacted and escaped a
// chunk at a time (each chunk read with a margin of the longest secret on either side, so a
// secret across a chunk's edge is still found), then the closing `"}`.
BodyStream LogTextStream(AttemptLog log, std::shared_ptr<const Redactor> redactor, int64_t from,
                         int64_t to, std::string head) {
  struct State {
    AttemptLog log;
    int64_t pos;
    int64_t to;
    std::string head;
    std::string pending;  // redacted bytes that end inside a UTF-8 sequence
  };
  auto state = std::make_shared<State>(State{std::move(log), from, to, std::move(head), ""});
  return [state, redactor](std::string& out) -> absl::StatusOr<bool> {
    const Redactor& redact = *redactor;
    State& st = *state;
    if (!st.head.empty()) {
      out += st.head;
      st.head.clear();
    }
    if (st.pos < st.to) {
      int64_t next = std::min(st.to, st.pos + kLogChunk);
      int64_t margin = redact.MaxLength();
      int64_t window_start = std::max<int64_t>(0, st.pos - margin);
      ASSIGN_OR_RETURN(std::string window, st.log.read(window_start, next + margin - window_start));
      // A log cut short since it was opened ends the text where it now ends.
      int64_t slice_to =
          std::clamp<int64_t>(window_start + static_cast<int64_t>(window.size()), st.pos, next);
      st.pending += redact.Slice(window, window_start, st.pos, slice_to);
      st.pos = next;
      size_t whole = st.pos < st.to ? WholeUtf8Prefix(st.pending) : st.pending.size();
      out += JsonStringBody(st.pending.substr(0, whole));
      st.pending.erase(0, whole);
      if (st.pos < st.to) return true;
    }
    out += R"("})";
    return false;
  };
}

}  // namespace

int HttpStatusFor(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kOk:
      return 200;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
      return 400;
    case absl::StatusCode::kUnauthenticated:
      return 401;
    case absl::StatusCode::kPermissionDenied:
      return 403;
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kFailedPrecondition:
      return 409;
    case absl::StatusCode::kUnavailable:
      return 503;
    default:
      return 500;
  }
}

Api::Api(RunStore& runs, ScheduleStore& schedules, FleetRegistry& fleet, Engine& engine,
         ApiOptions options)
    : runs_(runs),
      schedules_(schedules),
      fleet_(fleet),
      engine_(engine),
      options_(std::move(options)),
      clock_(options_.clock != nullptr ? *options_.clock : system_clock_) {
  options_.redact.Add(options_.token);
  Add("GET", "/api/health", false, &Api::Health);
  Add("GET", "/api/runs", true, &Api::ListRuns);
  Add("POST", "/api/runs", true, &Api::SubmitRun);
  Add("GET", "/api/runs/{run}", true, &Api::GetRun);
  Add("POST", "/api/runs/{run}/cancel", true, &Api::CancelRun);
  Add("POST", "/api/runs/{run}/resume", true, &Api::ResumeRun);
  Add("POST", "/api/runs/{run}/retry", true, &Api::RetryRun);
  Add("GET", "/api/runs/{run}/tasks", true, &Api::ListTasks);
  Add("GET", "/api/runs/{run}/tasks/{step}/{index}", true, &Api::GetTask);
  Add("GET", "/api/runs/{run}/tasks/{step}/{index}/log", true, &Api::GetLog);
  Add("GET", "/api/runs/{run}/timeline", true, &Api::Timeline);
  Add("GET", "/api/runs/{run}/events", true, &Api::ListEvents);
  Add("GET", "/api/runs/{run}/cost", true, &Api::RunCost);
  Add("GET", "/api/workers", true, &Api::ListWorkers);
  Add("GET", "/api/pipelines", true, &Api::ListPipelines);
  Add("GET", "/api/schedules", true, &Api::ListSchedules);
  Add("POST", "/api/schedules", true, &Api::CreateSchedule);
  Add("GET", "/api/schedules/{name}", true, &Api::GetSchedule);
  Add("PATCH", "/api/schedules/{name}", true, &Api::UpdateSchedule);
  Add("DELETE", "/api/schedules/{name}", true, &Api::DeleteSchedule);
  Add("GET", "/api/autoscaler", true, &Api::Autoscaler);
  Add("GET", "/metrics", true, &Api::Metrics);
}

void Api::Add(const std::string& method, const std::string& pattern, bool needs_token,
              Handler handler) {
  routes_.push_back({method, Segments(pattern), pattern, needs_token, std::move(handler)});
}

std::vector<Api::RouteInfo> Api::Routes() const {
  std::vector<RouteInfo> out;
  for (const Route& r : routes_) out.push_back({r.method, r.pattern, r.needs_token});
  return out;
}

bool Api::Authorized(const std::string& authorization) const {
  constexpr std::string_view kBearer = "Bearer ";
  if (options_.token.empty() || !authorization.starts_with(kBearer)) return false;
  // Comparing digests keeps the time independent of where, and whether, the texts differ.
  auto given = Sha256(std::string_view(authorization).substr(kBearer.size()));
  auto want = Sha256(options_.token);
  return CRYPTO_memcmp(given.data(), want.data(), given.size()) == 0;
}

HttpReply Api::Handle(const ApiRequest& req) {
  HttpReply reply = Dispatch(req);
  if (reply.masked) return reply;  // a log: masked as it was read
  // Secrets are masked in the raw strings, before JSON escaping could disguise them. Under
  // /api/runs/RUN/ the run's own secrets are masked too (a task's error may quote its command
  // or query).
  std::vector<std::string> segments = Segments(req.path);
  std::shared_ptr<const Redactor> run_redact;
  if (segments.size() >= 3 && segments[0] == "api" && segments[1] == "runs" && reply.status < 300) {
    run_redact = RedactorFor(segments[2]);
  }
  const Redactor& redact = run_redact != nullptr ? *run_redact : options_.redact;
  if (reply.json) {
    redact.RedactJson(*reply.json);
    reply.body = DumpJson(*reply.json);
    reply.json.reset();
  }
  reply.body = redact(std::move(reply.body));
  return reply;
}

std::shared_ptr<const Redactor> Api::RedactorFor(const std::string& run_id) {
  auto redact = std::make_shared<Redactor>(options_.redact);
  absl::StatusOr<RunRecord> run = runs_.GetRun(run_id);
  if (!run.ok()) return redact;
  if (absl::StatusOr<std::shared_ptr<const Pipeline>> pipeline = engine_.PipelineFor(*run);
      pipeline.ok()) {
    for (const std::string& secret : (*pipeline)->SecretValues()) {
      redact->AddWithQuotedForms(secret);
    }
    return redact;
  }
  // A spec this barge no longer parses: at least the params the run names secret.
  nlohmann::json params = nlohmann::json::parse(run->params_json, nullptr, false);
  for (const auto& [name, value] : SecretParams(run->spec_source, params)) {
    redact->AddWithQuotedForms(value);
  }
  return redact;
}

HttpReply Api::Dispatch(const ApiRequest& req) {
  std::vector<std::string> segments = Segments(req.path);
  const Route* found = nullptr;
  bool path_matched = false;
  Params params;
  for (const Route& r : routes_) {
    if (r.segments.size() != segments.size()) continue;
    Params p;
    bool match = true;
    for (size_t i = 0; i < segments.size() && match; ++i) {
      const std::string& want = r.segments[i];
      if (want.size() > 2 && want.front() == '{' && want.back() == '}') {
        p[want.substr(1, want.size() - 2)] = segments[i];
      } else {
        match = want == segments[i];
      }
    }
    if (!match) continue;
    path_matched = true;
    if (r.method == req.method) {
      found = &r;
      params = std::move(p);
      break;
    }
  }
  // Authentication comes first, so that nothing about the routes leaks without a token.
  bool public_route = found != nullptr && !found->needs_token;
  if (!public_route && !Authorized(req.authorization)) {
    return ErrorReply(401, "missing or wrong bearer token (Authorization: Bearer <token>)");
  }
  if (found == nullptr) {
    return path_matched ? ErrorReply(405, Cat(req.method, " is not allowed on ", req.path))
                        : ErrorReply(404, Cat("no route ", req.path));
  }
  HttpReply reply;
  try {
    absl::StatusOr<HttpReply> r = (this->*found->handler)(req, params);
    reply = r.ok() ? *std::move(r)
                   : ErrorReply(HttpStatusFor(r.status()), ToString(r.status().message()));
  } catch (const std::exception& e) {
    reply = ErrorReply(500, Cat("internal error: ", e.what()));
  }
  return reply;
}

absl::StatusOr<HttpReply> Api::Health(const ApiRequest&, const Params&) {
  ASSIGN_OR_RETURN(int schema, runs_.SchemaVersion());
  return JsonReply({{"status", "ok"}, {"schema", schema}});
}

absl::StatusOr<HttpReply> Api::ListRuns(const ApiRequest& req, const Params&) {
  ASSIGN_OR_RETURN(int64_t limit, QueryInt(req, "limit", 50, 1, kMaxPage));
  ASSIGN_OR_RETURN(int64_t offset, QueryInt(req, "offset", 0, 0, INT64_MAX / 2));
  std::string state = QueryString(req, "state");
  std::string pipeline = QueryString(req, "pipeline");
  RunFilter filter{.limit = limit + 1, .offset = offset};  // one more: is there a next page?
  if (!state.empty()) filter.state = state;
  if (!pipeline.empty()) filter.pipeline = pipeline;
  ASSIGN_OR_RETURN(std::vector<RunRecord> runs, runs_.ListRuns(filter));
  int64_t now = runs_.NowMs();
  nlohmann::json items = nlohmann::json::array();
  bool more = static_cast<int64_t>(runs.size()) > limit;
  if (more) runs.pop_back();
  for (const RunRecord& r : runs) items.push_back(RunJson(r, now));
  nlohmann::json out = {{"items", items}, {"limit", limit}, {"offset", offset}};
  out["next_offset"] = more ? nlohmann::json(offset + limit) : nlohmann::json(nullptr);
  return JsonReply(out);
}

absl::StatusOr<std::vector<std::string>> Api::PipelineFiles() {
  if (options_.pipelines_dir.empty()) return std::vector<std::string>{};
  return PipelineFilesIn(options_.pipelines_dir);
}

absl::StatusOr<Pipeline> Api::PipelineFrom(const nlohmann::json& body,
                                           const ParamOverrides& params) {
  ASSIGN_OR_RETURN(std::string name, StringField(body, "pipeline"));
  ASSIGN_OR_RETURN(std::string spec, StringField(body, "spec"));
  if (name.empty() == spec.empty()) {
    return absl::InvalidArgumentError(
        "give exactly one of \"pipeline\" (a registered pipeline's name) and \"spec\" (YAML)");
  }
  if (!spec.empty()) {
    std::string dir = options_.pipelines_dir.empty() ? std::filesystem::current_path().string()
                                                     : options_.pipelines_dir;
    // Relative globs resolve against `dir`; errors name the request's own fields, not that
    // made-up file and not the CLI's flag.
    const std::string path = dir + "/submitted.yaml";
    absl::StatusOr<Pipeline> parsed = ParsePipeline(spec, path, params);
    if (parsed.ok()) return parsed;
    std::string message = ReplaceAll(ToString(parsed.status().message()), path + ":", "spec:");
    // The parser's messages about a param begin "--param NAME:" after the location.
    message = ReplaceAll(message, "spec:1:1: --param ", "spec:1:1: params.");
    return absl::Status(parsed.status().code(), message);
  }
  if (options_.pipelines_dir.empty()) {
    return absl::NotFoundError(
        Cat("no pipeline \"", name, "\": the server has no --pipelines directory"));
  }
  ASSIGN_OR_RETURN(std::vector<std::string> files, PipelineFiles());
  for (const std::string& file : files) {
    absl::StatusOr<Pipeline> p = LoadPipeline(file, {});
    if (p.ok() && p->name == name) return LoadPipeline(file, params);
  }
  return absl::NotFoundError(Cat("no pipeline named \"", name, "\" in ", options_.pipelines_dir));
}

absl::StatusOr<HttpReply> Api::ListPipelines(const ApiRequest&, const Params&) {
  nlohmann::json out = nlohmann::json::array();
  ASSIGN_OR_RETURN(std::vector<std::string> files, PipelineFiles());
  for (const std::string& file : files) {
    absl::StatusOr<Pipeline> p = LoadPipeline(file, {});
    nlohmann::json item = {{"file", std::filesystem::path(file).filename().string()}};
    if (p.ok()) {
      item["name"] = p->name;
      item["steps"] = p->steps.size();
      item["schedule"] = p->schedule.cron;
      nlohmann::json params = nlohmann::json::object();
      for (const auto& [k, v] : p->params) params[k] = p->IsSecret(k) ? std::string(kRedacted) : v;
      item["params"] = params;
    } else {
      item["error"] = ToString(p.status().message());
    }
    out.push_back(item);
  }
  return JsonReply(out);
}

absl::StatusOr<HttpReply> Api::SubmitRun(const ApiRequest& req, const Params&) {
  ASSIGN_OR_RETURN(nlohmann::json body, ParseBody(req, {"pipeline", "spec", "params"}));
  ASSIGN_OR_RETURN(ParamOverrides params, ParamsField(body));
  ASSIGN_OR_RETURN(Pipeline pipeline, PipelineFrom(body, params));
  RETURN_IF_ERROR(CheckInputs(pipeline, engine_.object_stores()));
  RETURN_IF_ERROR(CheckSql(pipeline));
  {
    // Checked against the fleet the run goes to (live workers, autoscalers' sizes), if any.
    ASSIGN_OR_RETURN(std::vector<Seat> seats, FleetSeats(fleet_));
    std::string no_seats;
    RETURN_IF_ERROR(CheckPipelineSeats(pipeline, seats, no_seats));
  }
  Shipped shipped;
  if (options_.ship) {
    ShipOptions ship = *options_.ship;
    // A spec posted without a --pipelines directory has no directory of its own to bundle.
    ship.bundle = !(body.contains("spec") && options_.pipelines_dir.empty());
    ASSIGN_OR_RETURN(Shipment s, ShipRun(pipeline, options_.root, engine_.object_stores(), ship));
    shipped = {.bundle = s.bundle, .uploads_json = s.uploads_json};
  }
  ASSIGN_OR_RETURN(std::string id, engine_.CreateRun(pipeline, options_.root, "", shipped));
  ASSIGN_OR_RETURN(RunRecord run, engine_.Advance(id));
  return JsonReply(RunJson(run, runs_.NowMs()), 201);
}

absl::StatusOr<HttpReply> Api::GetRun(const ApiRequest&, const Params& p) {
  const std::string& id = p.at("run");
  ASSIGN_OR_RETURN(RunRecord run, runs_.GetRun(id));
  ASSIGN_OR_RETURN(std::vector<StepRecord> steps, runs_.GetSteps(id));
  ASSIGN_OR_RETURN(std::vector<StepCounts> counts, PacedCounts(run, steps));
  int64_t now = runs_.NowMs();
  nlohmann::json out = RunJson(run, now);
  ASSIGN_OR_RETURN(std::vector<Seat> seats, SeatsFor(run, fleet_));
  out["steps"] = StepsJson(run, steps, counts, now, &seats);
  return JsonReply(out);
}

absl::StatusOr<std::vector<StepCounts>> Api::PacedCounts(const RunRecord& run,
                                                         const std::vector<StepRecord>& steps) {
  std::string states = run.state;
  for (const StepRecord& s : steps) states += Cat(",", s.state);
  {
    absl::MutexLock lock(&counts_mu_);
    auto it = counts_.find(run.id);
    if (it != counts_.end() && it->second.states == states &&
        !it->second.pacer.Due(clock_.ElapsedMs())) {
      return it->second.counts;
    }
  }
  int64_t started = clock_.ElapsedMs();
  ASSIGN_OR_RETURN(std::vector<StepCounts> counts, runs_.CountTasks(run.id));
  constexpr size_t kRunsKept = 256;
  absl::MutexLock lock(&counts_mu_);
  if (counts_.size() >= kRunsKept && !counts_.contains(run.id)) counts_.clear();
  CachedCounts& cached = counts_.try_emplace(run.id, options_.count_share).first->second;
  cached.states = std::move(states);
  cached.counts = counts;
  cached.pacer.Took(started, clock_.ElapsedMs());
  return counts;
}

absl::StatusOr<HttpReply> Api::CancelRun(const ApiRequest& req, const Params& p) {
  RETURN_IF_ERROR(ParseBody(req, {}).status());
  ASSIGN_OR_RETURN(bool cancelled, runs_.CancelRun(p.at("run"), "cancelled through the API"));
  ASSIGN_OR_RETURN(RunRecord rec, runs_.GetRun(p.at("run")));
  if (!cancelled) return absl::FailedPreconditionError(Cat("run ", rec.id, " already ", rec.state));
  return JsonReply(RunJson(rec, runs_.NowMs()));
}

absl::StatusOr<HttpReply> Api::ResumeRun(const ApiRequest& req, const Params& p) {
  return Requeue(req, p.at("run"), /*failed_only=*/false);
}

absl::StatusOr<HttpReply> Api::RetryRun(const ApiRequest& req, const Params& p) {
  return Requeue(req, p.at("run"), /*failed_only=*/true);
}

absl::StatusOr<HttpReply> Api::Requeue(const ApiRequest& req, const std::string& id,
                                       bool failed_only) {
  RETURN_IF_ERROR(ParseBody(req, {}).status());
  ASSIGN_OR_RETURN(int64_t requeued, RequeueRun(runs_, id, failed_only));
  ASSIGN_OR_RETURN(RunRecord run, engine_.Advance(id));
  nlohmann::json out = RunJson(run, runs_.NowMs());
  out["requeued"] = requeued;
  return JsonReply(out);
}

absl::StatusOr<HttpReply> Api::ListTasks(const ApiRequest& req, const Params& p) {
  const std::string& id = p.at("run");
  RETURN_IF_ERROR(runs_.GetRun(id).status());
  ASSIGN_OR_RETURN(int64_t limit, QueryInt(req, "limit", 100, 1, kMaxPage));
  ASSIGN_OR_RETURN(int64_t offset, QueryInt(req, "offset", 0, 0, INT64_MAX / 2));
  TaskFilter filter{.run_id = id, .limit = limit + 1, .offset = offset};
  if (std::string step = QueryString(req, "step"); !step.empty()) filter.step = step;
  if (std::string state = QueryString(req, "state"); !state.empty()) filter.state = state;
  ASSIGN_OR_RETURN(std::vector<TaskRecord> tasks, runs_.ListTasks(filter));
  bool more = static_cast<int64_t>(tasks.size()) > limit;
  if (more) tasks.pop_back();
  nlohmann::json items = nlohmann::json::array();
  for (const TaskRecord& t : tasks) items.push_back(TaskJson(t));
  nlohmann::json out = {{"items", items}, {"limit", limit}, {"offset", offset}};
  out["next_offset"] = more ? nlohmann::json(offset + limit) : nlohmann::json(nullptr);
  return JsonReply(out);
}

absl::StatusOr<HttpReply> Api::GetTask(const ApiRequest&, const Params& p) {
  ASSIGN_OR_RETURN(int64_t index, IndexParam(p.at("index")));
  ASSIGN_OR_RETURN(TaskRecord task, runs_.GetTask({p.at("run"), p.at("step"), index}));
  ASSIGN_OR_RETURN(std::vector<AttemptRecord> attempts, runs_.ListAttempts(task.key));
  nlohmann::json out = TaskJson(task);
  out["attempt_history"] = nlohmann::json::array();
  for (const AttemptRecord& a : attempts) out["attempt_history"].push_back(AttemptJson(a));
  return JsonReply(out);
}

absl::StatusOr<HttpReply> Api::GetLog(const ApiRequest& req, const Params& p) {
  ASSIGN_OR_RETURN(int64_t index, IndexParam(p.at("index")));
  ASSIGN_OR_RETURN(int64_t attempt, QueryInt(req, "attempt", 0, 0, 1'000'000));
  ASSIGN_OR_RETURN(int64_t tail, QueryInt(req, "tail", -1, 0, INT64_MAX / 2));
  ASSIGN_OR_RETURN(int64_t offset, QueryInt(req, "offset", 0, 0, INT64_MAX / 2));
  ASSIGN_OR_RETURN(int64_t length, QueryInt(req, "length", -1, 0, INT64_MAX / 2));
  ASSIGN_OR_RETURN(AttemptLog log,
                   OpenAttemptLog(runs_, engine_.object_stores(),
                                  {p.at("run"), p.at("step"), index}, static_cast<int>(attempt)));
  const int64_t size = log.size;
  int64_t from = std::min(offset, size);
  if (tail >= 0) from = std::max<int64_t>(0, size - tail);
  int64_t to = length >= 0 ? from + std::min(length, size - from) : size;
  // The run's secrets too: a task may well print them.
  std::shared_ptr<const Redactor> redactor = RedactorFor(p.at("run"));
  const Redactor& redact = *redactor;
  if (log.live && redact.MaxLength() > 1 && to > size - (redact.MaxLength() - 1)) {
    // A secret the task is writing right now must not show its first bytes, whether the slice
    // ends at the log's end or a few bytes before: hold back from where one could begin.
    int64_t start = std::max<int64_t>(0, size - (redact.MaxLength() - 1));
    ASSIGN_OR_RETURN(std::string last, log.read(start, size - start));
    to = redact.LiveEnd(last, size, from, to);
  }
  // `end` is where the next page starts: the text is redacted, so its length is not the range's.
  std::string head =
      Cat(R"({"attempt":)", log.attempt, R"(,"live":)", log.live ? "true" : "false", R"(,"size":)",
          size, R"(,"offset":)", from, R"(,"end":)", to, R"(,"text":")");
  BodyStream stream = LogTextStream(std::move(log), redactor, from, to, std::move(head));
  HttpReply reply;
  reply.masked = true;
  if (to - from <= kLogChunk) {
    // Small enough to send whole (the usual case: a tail for a browser).
    for (bool more = true; more;) {
      ASSIGN_OR_RETURN(more, stream(reply.body));
    }
  } else {
    reply.stream = std::move(stream);
  }
  return reply;
}

absl::StatusOr<HttpReply> Api::Timeline(const ApiRequest&, const Params& p) {
  const std::string& id = p.at("run");
  ASSIGN_OR_RETURN(RunRecord run, runs_.GetRun(id));
  ASSIGN_OR_RETURN(std::vector<AttemptRecord> attempts, runs_.ListRunAttempts(id));
  int64_t now = run.finished_at > 0 ? run.finished_at : runs_.NowMs();
  std::vector<TimelineBar> bars;
  bars.reserve(attempts.size());
  for (const AttemptRecord& a : attempts) {
    int64_t end = a.finished_at > 0 ? a.finished_at : now;
    bars.push_back({.step = a.key.step,
                    .index = a.key.index,
                    .attempt = a.attempt,
                    .worker = a.worker_id,
                    .state = a.state,
                    .start_ms = a.started_at - run.created_at,
                    .end_ms = end - run.created_at});
  }
  // A canvas shows a few thousand pixels across: past this many bars, touching bars of one
  // worker and state are drawn as one (10k attempts: 632 KB as JSON; 100k would be 6 MB).
  constexpr size_t kMaxBars = 20'000;
  bool coalesced = bars.size() > kMaxBars;
  bars = CoalesceBars(std::move(bars), now - run.created_at, kMaxBars);
  // Compact rows for the Gantt chart: [step, index, attempt, worker, state, start, end, count]
  // with times in ms from the run's creation; a merged bar has index -1 and count > 1.
  nlohmann::json rows = nlohmann::json::array();
  for (const TimelineBar& b : bars) {
    rows.push_back({b.step, b.index, b.attempt, b.worker, b.state, b.start_ms, b.end_ms, b.count});
  }
  return JsonReply(
      {{"run", id},
       {"created_at", IsoTime(run.created_at)},
       {"now_ms", now - run.created_at},
       {"attempts", attempts.size()},
       {"coalesced", coalesced},
       {"columns", {"step", "index", "attempt", "worker", "state", "start_ms", "end_ms", "count"}},
       {"rows", rows}});
}

absl::StatusOr<HttpReply> Api::ListEvents(const ApiRequest&, const Params& p) {
  ASSIGN_OR_RETURN(RunRecord rec, runs_.GetRun(p.at("run")));
  ASSIGN_OR_RETURN(std::vector<EventRecord> events, runs_.ListEvents(rec.id));
  nlohmann::json out = nlohmann::json::array();
  for (const EventRecord& e : events) {
    out.push_back({{"id", e.id},
                   {"at", IsoTime(e.at)},
                   {"kind", e.kind},
                   {"step", e.step},
                   {"index", e.index},
                   {"message", e.message}});
  }
  return JsonReply(out);
}

absl::StatusOr<HttpReply> Api::RunCost(const ApiRequest&, const Params& p) {
  ASSIGN_OR_RETURN(CostReport report, ComputeRunCost(runs_, fleet_, p.at("run"), options_.prices));
  return JsonReply(CostReportJson(report));
}

absl::StatusOr<HttpReply> Api::ListWorkers(const ApiRequest&, const Params&) {
  ASSIGN_OR_RETURN(std::vector<WorkerRecord> workers, fleet_.ListWorkers());
  int64_t now = runs_.NowMs();
  nlohmann::json out = nlohmann::json::array();
  for (const WorkerRecord& w : workers) out.push_back(WorkerJson(w, now));
  return JsonReply(out);
}

absl::StatusOr<HttpReply> Api::ListSchedules(const ApiRequest&, const Params&) {
  ASSIGN_OR_RETURN(std::vector<ScheduleRecord> schedules, schedules_.ListSchedules());
  nlohmann::json out = nlohmann::json::array();
  for (const ScheduleRecord& s : schedules) out.push_back(ScheduleJson(s, runs_.NowMs()));
  return JsonReply(out);
}

absl::StatusOr<HttpReply> Api::GetSchedule(const ApiRequest&, const Params& p) {
  const std::string& name = p.at("name");
  ASSIGN_OR_RETURN(ScheduleRecord s, schedules_.GetSchedule(name));
  ASSIGN_OR_RETURN(std::vector<ScheduleFire> fires, schedules_.ListFires(name, 50));
  nlohmann::json out = ScheduleJson(s, runs_.NowMs());
  out["fires"] = nlohmann::json::array();
  for (const ScheduleFire& f : fires) {
    out["fires"].push_back({{"slot", IsoTime(f.slot)},
                            {"outcome", f.outcome},
                            {f.outcome == "fired" ? "run" : "reason", f.run_id},
                            {"lag_ms", f.at - f.slot}});
  }
  return JsonReply(out);
}

absl::StatusOr<HttpReply> Api::CreateSchedule(const ApiRequest& req, const Params&) {
  return PutSchedule(req, "", /*create=*/true);
}

absl::StatusOr<HttpReply> Api::UpdateSchedule(const ApiRequest& req, const Params& p) {
  return PutSchedule(req, p.at("name"), /*create=*/false);
}

absl::StatusOr<HttpReply> Api::PutSchedule(const ApiRequest& req, const std::string& path_name,
                                           bool create) {
  std::vector<std::string> fields = {"cron", "timezone", "catchup", "overlap", "params", "enabled"};
  if (create) {
    for (const char* f : {"name", "pipeline", "spec"}) fields.push_back(f);
  }
  ASSIGN_OR_RETURN(nlohmann::json body, ParseBody(req, fields));
  ScheduleRecord s;
  if (create) {
    ASSIGN_OR_RETURN(Pipeline p, PipelineFrom(body, {}));
    s = ScheduleFromPipeline(p, options_.root);
    ASSIGN_OR_RETURN(s.name, StringField(body, "name", p.name));
    absl::StatusOr<ScheduleRecord> existing = schedules_.GetSchedule(s.name);
    if (existing.ok()) {
      return absl::AlreadyExistsError(Cat("schedule \"", s.name, "\" exists (PATCH changes it)"));
    }
  } else {
    ASSIGN_OR_RETURN(s, schedules_.GetSchedule(path_name));
  }
  ASSIGN_OR_RETURN(s.cron, StringField(body, "cron", s.cron));
  ASSIGN_OR_RETURN(s.time_zone, StringField(body, "timezone", s.time_zone));
  ASSIGN_OR_RETURN(s.catchup, StringField(body, "catchup", s.catchup));
  ASSIGN_OR_RETURN(s.overlap, StringField(body, "overlap", s.overlap));
  if (body.contains("params")) {
    ASSIGN_OR_RETURN(ParamOverrides params, ParamsField(body));
    s.params_json = DumpJson(nlohmann::json(params));
  }
  if (body.contains("enabled")) {
    if (!body["enabled"].is_boolean()) {
      return absl::InvalidArgumentError("field \"enabled\" must be true or false");
    }
    s.enabled = body["enabled"].get<bool>();
  }
  if (s.cron.empty()) {
    return absl::InvalidArgumentError(
        "no cron: give \"cron\", or register a pipeline that has a schedule:");
  }
  RETURN_IF_ERROR(ValidateSchedule(s));
  RETURN_IF_ERROR(schedules_.PutSchedule(s));
  ASSIGN_OR_RETURN(ScheduleRecord stored, schedules_.GetSchedule(s.name));
  return JsonReply(ScheduleJson(stored, runs_.NowMs()), create ? 201 : 200);
}

absl::StatusOr<HttpReply> Api::DeleteSchedule(const ApiRequest&, const Params& p) {
  ASSIGN_OR_RETURN(bool deleted, schedules_.DeleteSchedule(p.at("name")));
  if (!deleted) return absl::NotFoundError(Cat("no schedule \"", p.at("name"), "\""));
  return JsonReply({{"deleted", p.at("name")}});
}

absl::StatusOr<HttpReply> Api::Autoscaler(const ApiRequest&, const Params&) {
  return JsonReply(options_.autoscaler_status
                       ? options_.autoscaler_status()
                       : nlohmann::json{{"queues", nlohmann::json::array()}});
}

absl::StatusOr<HttpReply> Api::Metrics(const ApiRequest&, const Params&) {
  return HttpReply{.content_type = "text/plain; version=0.0.4",
                   .body = options_.metrics_text ? options_.metrics_text() : ""};
}

}  // namespace barge

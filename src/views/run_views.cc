#include "views/run_views.h"

#include <algorithm>
#include <charconv>
#include <map>
#include <memory>
#include <optional>

#include "common/fs.h"
#include "common/redact.h"
#include "common/status.h"
#include "common/strings.h"
#include "common/units.h"
#include "objstore/data_root.h"
#include "objstore/object_store.h"
#include "schedule/cron.h"
#include "spec/pipeline.h"

namespace barge {
namespace {

nlohmann::json ParsedOr(const std::string& text, nlohmann::json fallback) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  return j.is_discarded() ? fallback : j;
}

// Params as shown: the value of a secret one (a secret-looking name, or one the pipeline lists
// under secrets:) is kRedacted.
nlohmann::json ShownParams(const std::string& params_json, const std::string& spec_source) {
  nlohmann::json params = ParsedOr(params_json, nlohmann::json::object());
  for (const auto& [name, value] : SecretParams(spec_source, params)) params[name] = kRedacted;
  return params;
}

}  // namespace

nlohmann::json RunJson(const RunRecord& r, int64_t now) {
  return {{"id", r.id},
          {"pipeline", r.pipeline},
          {"state", r.state},
          {"created_at", IsoTime(r.created_at)},
          {"finished_at", r.finished_at > 0 ? IsoTime(r.finished_at) : ""},
          {"elapsed_ms", (r.finished_at > 0 ? r.finished_at : now) - r.created_at},
          {"error", r.error},
          {"root", r.root},
          {"bundle", r.bundle},
          {"params", ShownParams(r.params_json, r.spec_source)}};
}

nlohmann::json StepsJson(const RunRecord& run, const std::vector<StepRecord>& steps,
                         const std::vector<StepCounts>& counts, int64_t now,
                         const std::vector<Seat>* seats) {
  std::map<std::string, StepCounts> by_step;
  for (const StepCounts& c : counts) by_step[c.step] = c;
  std::map<std::string, std::vector<std::string>> needs;
  ParamOverrides params;
  const nlohmann::json given = ParsedOr(run.params_json, nlohmann::json::object());
  for (const auto& [k, v] : given.items()) {
    if (v.is_string()) params[k] = v.get<std::string>();
  }
  std::map<std::string, std::string> unplaceable;
  if (absl::StatusOr<Pipeline> p = ParsePipeline(run.spec_source, run.spec_path, params); p.ok()) {
    for (const Step& s : p->steps) needs[s.name] = s.needs;
    if (seats != nullptr && run.state == state::kRunning) {
      unplaceable = UnplaceableSteps(*p, counts, *seats, run.id);
    }
  }
  nlohmann::json out = nlohmann::json::array();
  for (const StepRecord& s : steps) {
    const StepCounts& c = by_step[s.name];
    int64_t elapsed =
        s.started_at == 0 ? 0 : (s.finished_at > 0 ? s.finished_at : now) - s.started_at;
    out.push_back({{"name", s.name},
                   {"state", s.state},
                   {"needs", needs[s.name]},
                   {"tasks", c.Total()},
                   {"pending", c.pending},
                   {"running", c.running},
                   {"succeeded", c.succeeded},
                   {"failed", c.failed},
                   {"cancelled", c.cancelled},
                   {"cached", c.cached},
                   {"started_at", IsoTime(s.started_at)},
                   {"finished_at", IsoTime(s.finished_at)},
                   {"elapsed_ms", elapsed}});
    // A container step's image as pinned for the run (the same for every attempt).
    if (!s.image.empty()) out.back()["image"] = s.image;
    if (auto it = unplaceable.find(s.name); it != unplaceable.end()) {
      out.back()["unplaceable"] = it->second;
    }
  }
  return out;
}

absl::StatusOr<std::vector<Seat>> SeatsFor(const RunRecord& run, FleetRegistry& fleet) {
  if (run.state != state::kRunning) return std::vector<Seat>{};
  return FleetSeats(fleet);
}

nlohmann::json TaskJson(const TaskRecord& t) {
  return {{"step", t.key.step},
          {"index", t.key.index},
          {"state", t.state},
          {"attempts", t.attempt},
          {"exit_code", t.exit_code >= 0 ? nlohmann::json(t.exit_code) : nullptr},
          {"error", t.error},
          {"item", ParsedOr(t.item_json, nullptr)},
          {"retries_used", t.app_failures},
          {"infra_failures", t.infra_failures},
          {"queue", t.queue},
          {"required_labels", t.required_labels},
          {"cpu", t.cpu},
          {"memory", t.memory},
          {"worker", t.lease_owner},
          {"committed_attempt", t.committed_attempt},
          {"started_at", IsoTime(t.started_at)},
          {"finished_at", IsoTime(t.finished_at)},
          {"outputs", ParsedOr(t.outputs_json, nlohmann::json::array())}};
}

nlohmann::json AttemptJson(const AttemptRecord& a) {
  return {{"attempt", a.attempt},
          {"worker", a.worker_id},
          {"state", a.state},
          {"failure_class", a.failure_class},
          {"error", a.error},
          {"exit_code", a.exit_code >= 0 ? nlohmann::json(a.exit_code) : nullptr},
          {"started_at", IsoTime(a.started_at)},
          {"finished_at", IsoTime(a.finished_at)},
          {"cpu_seconds", a.cpu_seconds},
          {"max_rss_kb", a.max_rss_kb},
          {"log", a.log_path}};
}

nlohmann::json WorkerJson(const WorkerRecord& w, int64_t now) {
  return {{"id", w.id},
          {"host", w.host},
          {"pid", w.pid},
          {"cpu", w.cpu},
          {"memory", w.memory},
          {"queue", w.queue},
          {"labels", ParsedOr(w.labels_json, nlohmann::json::object())},
          {"started_at", IsoTime(w.started_at)},
          {"heartbeat_age_ms", now - w.heartbeat_at},
          {"status", w.status},
          {"stats", ParsedOr(w.stats_json, nlohmann::json::object())}};
}

nlohmann::json ScheduleJson(const ScheduleRecord& s, int64_t now) {
  absl::StatusOr<Cron> cron = Cron::Parse(s.cron, s.time_zone);
  return {{"name", s.name},
          {"cron", s.cron},
          {"timezone", s.time_zone},
          {"catchup", s.catchup},
          {"overlap", s.overlap},
          {"enabled", s.enabled},
          {"pipeline_file", s.spec_path},
          {"params", ShownParams(s.params_json, s.spec_source)},
          {"last_slot", IsoTime(s.last_slot)},
          {"next_slot", cron.ok() ? IsoTime(cron->NextAfterMs(std::max(now, s.last_slot))) : ""}};
}

namespace {

// The log an attempt shipped in pieces while it ran (worker/live_log.h), if it shipped any.
absl::StatusOr<std::optional<AttemptLog>> OpenLiveLog(const DataRoot& data,
                                                      const std::string& log_key, AttemptLog log) {
  ASSIGN_OR_RETURN(std::vector<ObjectInfo> listed,
                   data.store().List(DataRoot::LiveLogPrefix(log_key)));
  // By offset (the keys' 16 digits sort as the numbers do); a gap (a piece not yet listed)
  // ends the log there for now.
  std::vector<std::pair<int64_t, ObjectInfo>> pieces;
  for (ObjectInfo& o : listed) {
    std::string_view digits = std::string_view(o.key).substr(o.key.rfind('/') + 1);
    int64_t offset = 0;
    if (std::from_chars(digits.data(), digits.data() + digits.size(), offset).ec != std::errc())
      continue;
    pieces.emplace_back(offset, std::move(o));
  }
  std::sort(pieces.begin(), pieces.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  auto piece_list = std::make_shared<std::vector<std::pair<int64_t, ObjectInfo>>>();
  int64_t size = 0;
  for (auto& p : pieces) {
    if (p.first != size) break;
    size += p.second.size;
    piece_list->push_back(std::move(p));
  }
  if (piece_list->empty()) return std::nullopt;
  log.size = size;
  log.location = data.Location(DataRoot::LiveLogPrefix(log_key));
  log.read = [data, piece_list](int64_t offset, int64_t length) -> absl::StatusOr<std::string> {
    // The piece holding `offset`; the read ends at its end (fewer bytes, as a log's end may).
    for (const auto& [start, info] : *piece_list) {
      if (offset < start || offset >= start + info.size) continue;
      int64_t n = std::min(length, start + info.size - offset);
      return data.store().Get(info.key, ByteRange{.offset = offset - start, .length = n});
    }
    return std::string();
  };
  return log;
}

}  // namespace

absl::StatusOr<AttemptLog> OpenAttemptLog(RunStore& runs, ObjectStores& stores, const TaskKey& key,
                                          int attempt) {
  ASSIGN_OR_RETURN(TaskRecord task, runs.GetTask(key));
  ASSIGN_OR_RETURN(std::vector<AttemptRecord> attempts, runs.ListAttempts(task.key));
  std::string what = Cat(key.step, "[", key.index, "]");
  if (attempts.empty()) {
    return absl::NotFoundError(Cat("task ", what, " of run ", key.run_id, " has not started yet"));
  }
  const AttemptRecord* chosen = &attempts.back();
  if (attempt > 0) {
    chosen = nullptr;
    for (const AttemptRecord& a : attempts) {
      if (a.attempt == attempt) chosen = &a;
    }
    if (chosen == nullptr) {
      return absl::NotFoundError(
          Cat("task ", what, " has no attempt ", attempt, " (it has ", attempts.size(), ")"));
    }
  }
  ASSIGN_OR_RETURN(RunRecord run, runs.GetRun(key.run_id));
  ASSIGN_OR_RETURN(DataRoot data, DataRoot::Open(run.root, stores));
  // The log path is recorded when an attempt completes; a running or lost attempt's log is
  // where the layout puts it.
  AttemptLog log;
  log.attempt = chosen->attempt;
  log.location =
      chosen->log_path.empty()
          ? data.Location(DataRoot::LogKey({key.run_id, key.step, key.index, chosen->attempt}))
          : chosen->log_path;
  absl::StatusOr<std::string> object = data.KeyOf(log.location);
  if (!object.ok()) {
    return absl::PermissionDeniedError(Cat("the log of attempt ", chosen->attempt, " of ", what,
                                           " is recorded outside the run's root"));
  }
  log.live = chosen->state == state::kRunning;
  absl::StatusOr<ObjectInfo> info = data.store().Head(*object);
  if (absl::IsNotFound(info.status())) {
    if (!data.local_dir()) {
      // Not uploaded yet (running) or never (its worker was lost): what it shipped as it ran.
      ASSIGN_OR_RETURN(std::optional<AttemptLog> pieces, OpenLiveLog(data, *object, log));
      if (pieces) return *std::move(pieces);
    }
    if (log.live) {
      log.size = 0;  // nothing printed yet, or not yet shipped
      log.read = [](int64_t, int64_t) -> absl::StatusOr<std::string> { return std::string(); };
      return log;
    }
    if (chosen->state == state::kLost || chosen->state == state::kDrained) {
      return absl::NotFoundError(Cat("no log for attempt ", chosen->attempt, " of ", what,
                                     ": its worker was ", chosen->state,
                                     " before it could upload the log"));
    }
  }
  if (!info.ok()) {
    return absl::NotFoundError(
        Cat("no log for attempt ", chosen->attempt, " of ", what, ": ", info.status().message()));
  }
  log.size = info->size;
  log.read = [data, key = *object](int64_t offset, int64_t length) {
    return data.store().Get(key, ByteRange{.offset = offset, .length = length});
  };
  return log;
}

}  // namespace barge

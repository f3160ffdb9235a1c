// barge schedule add | list | remove | enable | disable: the schedules `barge serve` fires.
#include <cstdio>

#include "cli/commands.h"
#include "common/status.h"
#include "common/strings.h"
#include "common/text.h"
#include "nlohmann/json.hpp"
#include "schedule/cron.h"
#include "schedule/scheduler.h"
#include "spec/pipeline.h"
#include "views/run_views.h"

namespace barge {
namespace {

absl::Status Add(Context& ctx, const ScheduleCommand& cmd) {
  ASSIGN_OR_RETURN(ParamOverrides params, ParseParamFlags(cmd.params));
  ASSIGN_OR_RETURN(Pipeline p, LoadPipeline(cmd.pipeline, params));
  ScheduleRecord s = ScheduleFromPipeline(p, ctx.root);
  // Flags given win over the pipeline's own schedule:.
  for (auto [flag, field] :
       {std::pair{&cmd.name, &s.name}, std::pair{&cmd.cron, &s.cron},
        std::pair{&cmd.timezone, &s.time_zone}, std::pair{&cmd.catchup, &s.catchup},
        std::pair{&cmd.overlap, &s.overlap}}) {
    if (!flag->empty()) *field = *flag;
  }
  s.params_json = DumpJson(nlohmann::json(params));
  if (s.cron.empty()) {
    return absl::InvalidArgumentError(
        Cat(cmd.pipeline, ": no schedule: give --cron, or a schedule: in the pipeline"));
  }
  RETURN_IF_ERROR(ValidateSchedule(s));
  RETURN_IF_ERROR(ctx.store->PutSchedule(s));
  ASSIGN_OR_RETURN(ScheduleRecord stored, ctx.store->GetSchedule(s.name));
  ASSIGN_OR_RETURN(Cron cron, Cron::Parse(stored.cron, stored.time_zone));
  std::printf("schedule %s: %s (%s), next run %s\n", stored.name.c_str(), stored.cron.c_str(),
              stored.time_zone.c_str(),
              IsoTime(cron.NextAfterMs(std::max(ctx.store->NowMs(), stored.last_slot))).c_str());
  return absl::OkStatus();
}

absl::Status List(Context& ctx, bool json) {
  ASSIGN_OR_RETURN(std::vector<ScheduleRecord> schedules, ctx.store->ListSchedules());
  int64_t now = ctx.store->NowMs();
  nlohmann::json out = nlohmann::json::array();
  if (!json) {
    std::printf("%-20s %-16s %-18s %-8s %-7s %-8s %s\n", "NAME", "CRON", "TIMEZONE", "CATCHUP",
                "OVERLAP", "ENABLED", "NEXT");
  }
  for (const ScheduleRecord& s : schedules) {
    nlohmann::json j = ScheduleJson(s, now);
    if (json) {
      out.push_back(std::move(j));
    } else {
      std::printf("%-20s %-16s %-18s %-8s %-7s %-8s %s\n", s.name.c_str(), s.cron.c_str(),
                  s.time_zone.c_str(), s.catchup.c_str(), s.overlap.c_str(),
                  s.enabled ? "yes" : "no", j["next_slot"].get<std::string>().c_str());
    }
  }
  if (json) std::printf("%s\n", DumpJson(out, 2).c_str());
  return absl::OkStatus();
}

}  // namespace

int CmdSchedule(const Locations& where, const ScheduleCommand& cmd) {
  absl::StatusOr<std::unique_ptr<Context>> ctx =
      OpenContext(where, cmd.action == "add" ? StoreMode::kCreate : StoreMode::kExisting);
  if (!ctx.ok()) return ReportError(ctx.status());
  absl::Status s;
  if (cmd.action == "add") {
    s = Add(**ctx, cmd);
  } else if (cmd.action == "list") {
    s = List(**ctx, cmd.json);
  } else if (cmd.action == "remove") {
    absl::StatusOr<bool> removed = (*ctx)->store->DeleteSchedule(cmd.name);
    s = !removed.ok() ? removed.status()
        : *removed    ? absl::OkStatus()
                      : absl::NotFoundError(Cat("no schedule \"", cmd.name, "\""));
    if (s.ok()) std::printf("schedule %s removed\n", cmd.name.c_str());
  } else {
    bool enable = cmd.action == "enable";
    absl::StatusOr<bool> changed = (*ctx)->store->SetScheduleEnabled(cmd.name, enable);
    s = !changed.ok() ? changed.status()
        : *changed    ? absl::OkStatus()
                      : absl::NotFoundError(Cat("no schedule \"", cmd.name, "\""));
    if (s.ok()) std::printf("schedule %s %s\n", cmd.name.c_str(), enable ? "enabled" : "disabled");
  }
  return s.ok() ? 0 : ReportError(s);
}

}  // namespace barge

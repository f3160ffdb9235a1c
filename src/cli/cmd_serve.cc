// barge serve: the API, the web UI, schedules, the lease reaper and the autoscaler in one process.
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>

#include "cli/commands.h"
#include "cli/signals.h"
#include "common/fs.h"
#include "common/status.h"
#include "common/strings.h"
#include "engine/engine.h"
#include "fmt/format.h"
#include "schedule/scheduler.h"
#include "server/api.h"
#include "server/autoscaler.h"
#include "server/metrics.h"
#include "server/server.h"

namespace barge {
namespace {

constexpr int kMaxInfraFailures = 10;

// The bearer token: from --token-file, else BARGE_TOKEN, else a new random one written to
// `fallback_file` (mode 0600) — never printed.
absl::StatusOr<std::string> ResolveToken(const std::string& token_file,
                                         const std::string& fallback_file) {
  if (!token_file.empty()) {
    ASSIGN_OR_RETURN(std::string text, ReadFile(token_file));
    std::string token(Trim(text));
    if (token.size() < 16) {
      return absl::InvalidArgumentError(
          Cat("--token-file ", token_file, ": the token must be at least 16 characters"));
    }
    return token;
  }
  if (const char* env = std::getenv("BARGE_TOKEN"); env != nullptr && *env != '\0') {
    if (std::strlen(env) < 16) {
      return absl::InvalidArgumentError("BARGE_TOKEN must be at least 16 characters");
    }
    return std::string(env);
  }
  if (absl::StatusOr<std::string> existing = ReadFile(fallback_file); existing.ok()) {
    return std::string(Trim(*existing));
  }
  unsigned char bytes[24];
  if (RAND_bytes(bytes, sizeof bytes) != 1) return absl::InternalError("no random bytes");
  std::string token;
  for (unsigned char b : bytes) token += fmt::format("{:02x}", b);
  RETURN_IF_ERROR(MakeDirs(std::filesystem::path(fallback_file).parent_path().string()));
  RETURN_IF_ERROR(WriteFileAtomic(fallback_file, token + "\n"));
  ::chmod(fallback_file.c_str(), 0600);
  std::fprintf(stderr,
               "barge serve: no BARGE_TOKEN or --token-file: a new token is in %s (mode 0600)\n",
               fallback_file.c_str());
  return token;
}

// Schedules declared by the registered pipelines (`schedule:`), created or updated; a schedule
// that exists keeps its enabled flag, which the API may have changed.
absl::Status RegisterSchedules(StateStore& store, const std::string& dir, const std::string& root) {
  absl::StatusOr<std::vector<std::string>> files = PipelineFilesIn(dir);
  if (!files.ok()) return WithContext(files.status(), "--pipelines");
  for (const std::string& file : *files) {
    absl::StatusOr<Pipeline> p = LoadPipeline(file, {});
    if (!p.ok()) {
      std::fprintf(stderr, "barge serve: skipping %s: %s\n", file.c_str(),
                   ToString(p.status().message()).c_str());
      continue;
    }
    if (p->schedule.cron.empty()) continue;
    ScheduleRecord s = ScheduleFromPipeline(*p, root);
    if (absl::StatusOr<ScheduleRecord> old = store.GetSchedule(s.name); old.ok()) {
      s.enabled = old->enabled;
    }
    RETURN_IF_ERROR(ValidateSchedule(s));
    RETURN_IF_ERROR(store.PutSchedule(s));
    std::fprintf(stderr, "barge serve: schedule %s: %s (%s)\n", s.name.c_str(), s.cron.c_str(),
                 s.time_zone.c_str());
  }
  return absl::OkStatus();
}

absl::StatusOr<std::pair<std::string, int>> ParseListen(const std::string& listen) {
  size_t colon = listen.rfind(':');
  int port = -1;
  if (colon != std::string::npos) {
    std::string p = listen.substr(colon + 1);
    if (!p.empty() && p.find_first_not_of("0123456789") == std::string::npos && p.size() <= 5) {
      port = std::stoi(p);
    }
  }
  if (colon == std::string::npos || colon == 0 || port < 0 || port > 65535) {
    return absl::InvalidArgumentError(
        Cat("--listen ", listen, ": expected ADDRESS:PORT, e.g. 127.0.0.1:8080 (port 0: any)"));
  }
  return std::make_pair(listen.substr(0, colon), port);
}

}  // namespace

int CmdServe(const Locations& where, const ServeOptions& options) {
  absl::StatusOr<std::pair<std::string, int>> listen = ParseListen(options.listen);
  if (!listen.ok()) return ReportError(listen.status());
  absl::StatusOr<Prices> prices = ResolvePrices(options.prices);
  if (!prices.ok()) return ReportError(WithContext(prices.status(), "prices"));
  std::vector<QueueScaling> scaling;
  if (!options.autoscale.empty()) {
    absl::StatusOr<std::vector<QueueScaling>> loaded = LoadAutoscaleConfig(options.autoscale);
    if (!loaded.ok()) return ReportError(loaded.status());
    scaling = std::move(*loaded);
  }
  absl::StatusOr<std::unique_ptr<Context>> ctx = OpenContext(where);
  if (!ctx.ok()) return ReportError(ctx.status());
  Context& c = **ctx;
  std::string token_fallback =
      std::filesystem::path(c.scratch).parent_path().string() + "/serve.token";
  absl::StatusOr<std::string> token = ResolveToken(options.token_file, token_fallback);
  if (!token.ok()) return ReportError(token.status());

  std::string pipelines_dir;
  if (!options.pipelines.empty()) {
    pipelines_dir = AbsolutePath(options.pipelines);
    if (absl::Status s = RegisterSchedules(*c.store, pipelines_dir, c.root); !s.ok()) {
      return ReportError(s);
    }
  }

  Engine engine(*c.store);
  Scheduler scheduler(*c.store, engine);
  Metrics metrics(*c.store);
  ApiOptions api_options{
      .token = *token, .root = c.root, .pipelines_dir = pipelines_dir, .prices = *prices};
  api_options.redact.AddUrlPassword(c.state_url);
  if (const char* secret = std::getenv("AWS_SECRET_ACCESS_KEY")) api_options.redact.Add(secret);
  Redactor redact = api_options.redact;
  redact.Add(*token);

  // Workers the local provider starts find the store, root and scratch through the environment,
  // so that no password appears on a command line.
  ::setenv("BARGE_STATE", c.state_url.c_str(), 1);
  ::setenv("BARGE_ROOT", c.root.c_str(), 1);
  ::setenv("BARGE_SCRATCH", c.scratch.c_str(), 1);
  std::map<std::string, std::unique_ptr<WorkerProvider>> providers;
  std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
  for (const QueueScaling& q : scaling) {
    providers[q.queue] = q.provider == "command"
                             ? NewCommandProvider(q)
                             : NewLocalProvider(q, {self, "worker"}, c.scratch + "/autoscaler");
  }
  std::unique_ptr<Autoscaler> scaler;
  if (!scaling.empty())
    scaler = std::make_unique<Autoscaler>(*c.store, scaling, std::move(providers));
  if (scaler) api_options.autoscaler_status = [&] { return scaler->Status(); };
  api_options.metrics_text = [&]() -> std::string {
    absl::StatusOr<std::string> text = metrics.Render();
    return text.ok() ? *text : Cat("barge_up 0\n# error: ", text.status().message(), "\n");
  };
  Api api(*c.store, engine, std::move(api_options));

  ServerConfig config{.host = listen->first, .port = listen->second};
  if (!options.tick.empty()) {
    absl::StatusOr<int64_t> tick = ParseDurationMs(options.tick);
    if (!tick.ok()) return ReportError(WithContext(tick.status(), "--tick"));
    config.tick_ms = std::max<int64_t>(*tick, 10);
  }
  config.max_infra_failures = kMaxInfraFailures;
  Server server(*c.store, engine, api, config, &scheduler, scaler.get(), redact);
  absl::StatusOr<int> port = server.Bind();
  if (!port.ok()) return ReportError(port.status());
  std::printf("barge serve: listening on %s:%d\n", listen->first.c_str(), *port);
  std::fflush(stdout);
  {
    SignalWatcher signals([&](int sig) {
      std::fprintf(stderr, "barge serve: %s: stopping\n", strsignal(sig));
      server.Stop();
    });
    server.Run();
  }
  std::fprintf(stderr, "barge serve: stopped\n");
  return 0;
}

}  // namespace barge

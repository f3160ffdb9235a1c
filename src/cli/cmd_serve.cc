// barge serve: the API, the web UI, schedules, the lease reaper and the autoscaler in one process.
#include <fcntl.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "cli/commands.h"
#include "cli/signals.h"
#include "common/fs.h"
#include "common/status.h"
#include "common/strings.h"
#include "engine/engine.h"
#include "fleet/autoscaler.h"
#include "fmt/format.h"
#include "schedule/scheduler.h"
#include "server/api.h"
#include "server/metrics.h"
#include "server/server.h"
#include "store/state_store.h"
#include "store/store_url.h"

namespace barge {
namespace {

constexpr int kMaxInfraFailures = 10;

// The same rules for a token from anywhere: long enough not to be guessed, and only characters
// that travel unchanged in an HTTP header.
absl::Status CheckToken(std::string_view token, std::string_view what) {
  if (token.size() < 16) {
    return absl::InvalidArgumentError(
        Cat(what, ": the token must be at least 16 characters (it has ", token.size(), ")"));
  }
  for (char c : token) {
    if (c < 0x21 || c > 0x7e) {
      return absl::InvalidArgumentError(
          Cat(what, ": the token may hold only printable ASCII characters, no spaces"));
    }
  }
  return absl::OkStatus();
}

// Reads a token file, refusing one that others could read or swap: a symbolic link, anything but
// a regular file, a file owned by another user, or one with any group or other permission bit.
absl::StatusOr<std::string> ReadTokenFile(const std::string& path, std::string_view what) {
  std::string name = Cat(what, " ", path);
  int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0 && errno == ELOOP) {
    return absl::InvalidArgumentError(
        Cat(name, ": is a symbolic link; name the token file itself"));
  }
  if (fd < 0) return absl::InvalidArgumentError(Cat(name, ": ", std::strerror(errno)));
  struct stat st {};
  absl::Status bad;
  if (::fstat(fd, &st) != 0) {
    bad = absl::InternalError(Cat(name, ": ", std::strerror(errno)));
  } else if (!S_ISREG(st.st_mode)) {
    bad = absl::InvalidArgumentError(Cat(name, ": not a regular file"));
  } else if (st.st_uid != ::geteuid()) {
    bad = absl::InvalidArgumentError(Cat(name, ": owned by uid ", st.st_uid,
                                         ", not by the user running barge (uid ", ::geteuid(),
                                         "); chown it or use a file of your own"));
  } else if ((st.st_mode & 077) != 0) {
    bad = absl::InvalidArgumentError(Cat(name, ": group or others may access it (mode ",
                                         fmt::format("{:04o}", st.st_mode & 07777),
                                         "); run chmod 600 ", path));
  }
  // Read from the descriptor just checked, not the path again, which could be swapped meanwhile.
  std::string text;
  if (bad.ok()) {
    char buf[4096];
    for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) != 0;) {
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        bad = absl::InvalidArgumentError(Cat(name, ": ", std::strerror(errno)));
        break;
      }
      text.append(buf, static_cast<size_t>(n));
      if (text.size() > 64 * 1024) {
        bad = absl::InvalidArgumentError(Cat(name, ": larger than 64 KiB; not a token file"));
        break;
      }
    }
  }
  ::close(fd);
  if (!bad.ok()) return bad;
  std::string token(Trim(text));
  RETURN_IF_ERROR(CheckToken(token, name));
  return token;
}

// Writes a new random token to `path` with mode 0600 from the start. If another server wrote one
// first, that one is used: both then accept the same token.
absl::StatusOr<std::string> CreateTokenFile(const std::string& path) {
  unsigned char bytes[24];
  if (RAND_bytes(bytes, sizeof bytes) != 1) return absl::InternalError("no random bytes");
  std::string token;
  for (unsigned char b : bytes) token += fmt::format("{:02x}", b);
  RETURN_IF_ERROR(MakeDirs(std::filesystem::path(path).parent_path().string()));
  std::string temp = Cat(path, ".", ::getpid(), ".tmp");
  int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return absl::InternalError(Cat("creating ", temp, ": ", std::strerror(errno)));
  std::string line = token + "\n";
  bool written = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size()) &&
                 ::fsync(fd) == 0;
  int error = written ? 0 : errno;
  ::close(fd);
  // link() never replaces an existing file, unlike rename().
  if (written && ::link(temp.c_str(), path.c_str()) != 0) error = errno;
  ::unlink(temp.c_str());
  if (!written) return absl::InternalError(Cat("writing ", temp, ": ", std::strerror(error)));
  if (error == EEXIST) return ReadTokenFile(path, "serve.token");
  if (error != 0) return absl::InternalError(Cat("creating ", path, ": ", std::strerror(error)));
  std::fprintf(stderr,
               "barge serve: no BARGE_TOKEN or --token-file: a new token is in %s (mode 0600)\n",
               path.c_str());
  return token;
}

// The bearer token: from --token-file, else BARGE_TOKEN, else `fallback_file` (the serve.token
// beside the state), created with a new random token if missing — never printed. Files obey
// ReadTokenFile's rules and every token CheckToken's.
absl::StatusOr<std::string> ResolveToken(const std::string& token_file,
                                         const std::string& fallback_file) {
  if (!token_file.empty()) return ReadTokenFile(token_file, "--token-file");
  if (const char* env = std::getenv("BARGE_TOKEN"); env != nullptr && *env != '\0') {
    RETURN_IF_ERROR(CheckToken(env, "BARGE_TOKEN"));
    return std::string(env);
  }
  struct stat st {};
  if (::lstat(fallback_file.c_str(), &st) == 0) return ReadTokenFile(fallback_file, "serve.token");
  return CreateTokenFile(fallback_file);
}

// Schedules declared by the registered pipelines (`schedule:`), created or updated; a schedule
// that exists keeps its enabled flag, which the API may have changed.
absl::Status RegisterSchedules(ScheduleStore& schedules, const std::string& dir,
                               const std::string& root) {
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
    if (absl::StatusOr<ScheduleRecord> old = schedules.GetSchedule(s.name); old.ok()) {
      s.enabled = old->enabled;
    }
    RETURN_IF_ERROR(ValidateSchedule(s));
    RETURN_IF_ERROR(schedules.PutSchedule(s));
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
  // The one store plays every role the parts below take.
  StateStore& store = *c.store;
  std::string token_fallback =
      std::filesystem::path(c.scratch).parent_path().string() + "/serve.token";
  absl::StatusOr<std::string> token = ResolveToken(options.token_file, token_fallback);
  if (!token.ok()) return ReportError(token.status());

  std::string pipelines_dir;
  if (!options.pipelines.empty()) {
    pipelines_dir = AbsolutePath(options.pipelines);
    if (absl::Status s = RegisterSchedules(store, pipelines_dir, c.root); !s.ok()) {
      return ReportError(s);
    }
  }

  Engine engine(store, *c.object_stores);
  // Runs submitted or fired here are shipped like `barge run`'s (bundle/ship.h).
  const ShipOptions ship = ShipOptionsFor(c, ShipOptions{}.bundle_max);
  Scheduler scheduler(store, store, engine, {.ship = ship});
  Metrics metrics(store, store, store);
  ApiOptions api_options{.token = *token,
                         .root = c.root,
                         .pipelines_dir = pipelines_dir,
                         .ship = ship,
                         .prices = *prices};
  api_options.redact.AddUrlPassword(c.state_url);
  // The password as the server sees it too (percent-decoded), and one given to libpq apart.
  if (absl::StatusOr<StoreUrl> u = ParseStoreUrl(c.state_url); u.ok()) {
    api_options.redact.Add(u->password);
  }
  if (const char* pg = std::getenv("PGPASSWORD")) api_options.redact.Add(pg);
  for (const char* name : {"AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"}) {
    if (const char* secret = std::getenv(name)) api_options.redact.Add(secret);
  }
  Redactor redact = api_options.redact;
  redact.Add(*token);

  // Workers the local provider starts find the store, root and scratch through the environment,
  // so that no password appears on a command line.
  ::setenv("BARGE_STATE", c.state_url.c_str(), 1);
  ::setenv("BARGE_ROOT", c.root.c_str(), 1);
  ::setenv("BARGE_SCRATCH", c.scratch.c_str(), 1);
  PosixProcessLauncher launcher;
  SystemClock clock;
  std::map<std::string, std::unique_ptr<WorkerProvider>> providers;
  std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
  for (const QueueScaling& q : scaling) {
    providers[q.queue] =
        q.provider == "command"
            ? NewCommandProvider(q, launcher)
            : NewLocalProvider(q, {self, "worker"}, c.scratch + "/autoscaler", launcher, clock);
  }
  std::unique_ptr<Autoscaler> scaler;
  if (!scaling.empty())
    scaler = std::make_unique<Autoscaler>(store, store, scaling, std::move(providers), clock);
  if (scaler) api_options.autoscaler_status = [&] { return scaler->Status(); };
  api_options.metrics_text = [&]() -> std::string {
    absl::StatusOr<std::string> text = metrics.Render();
    return text.ok() ? *text : Cat("barge_up 0\n# error: ", text.status().message(), "\n");
  };
  Api api(store, store, store, engine, std::move(api_options));

  ServerConfig config{.host = listen->first, .port = listen->second};
  if (!options.tick.empty()) {
    absl::StatusOr<int64_t> tick = ParseDurationMs(options.tick);
    if (!tick.ok()) return ReportError(WithContext(tick.status(), "--tick"));
    config.tick_ms = std::max<int64_t>(*tick, 10);
  }
  config.max_infra_failures = kMaxInfraFailures;
  Server server(store, store, engine, api, config, &scheduler, scaler.get(), redact);
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

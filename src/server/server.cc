#include "server/server.h"

#include <httplib.h>

#include <cstdio>
#include <thread>

#include "common/clock.h"
#include "common/strings.h"
#include "common/units.h"
#include "server/ui_assets.h"

namespace barge {
namespace {

constexpr size_t kMaxBody = 8 << 20;  // a pipeline spec is far smaller
constexpr int kAdvanceEveryTicks = 10;

HttpRequest ToRequest(const httplib::Request& r) {
  HttpRequest out{.method = r.method, .path = r.path, .body = r.body};
  for (const auto& [k, v] : r.params) out.query[k] = v;
  out.authorization = r.get_header_value("Authorization");
  return out;
}

}  // namespace

Server::Server(StateStore& store, Engine& engine, Api& api, ServerConfig config,
               Scheduler* scheduler, Autoscaler* autoscaler, const Redactor& redact)
    : store_(store),
      engine_(engine),
      api_(api),
      config_(std::move(config)),
      scheduler_(scheduler),
      autoscaler_(autoscaler),
      redact_(redact),
      http_(std::make_unique<httplib::Server>()) {
  http_->set_payload_max_length(kMaxBody);
  // cpp-httplib prefers brotli when a browser offers it, at a quality that takes ~0.8 s for a
  // 10,000-attempt timeline; gzip is about as small here and fifty times faster. The handler
  // gets the request const, but httplib owns a mutable one.
  http_->set_pre_routing_handler([](const httplib::Request& req, httplib::Response&) {
    auto& headers = const_cast<httplib::Request&>(req).headers;
    auto it = headers.find("Accept-Encoding");
    if (it != headers.end()) {
      if (it->second.find("gzip") != std::string::npos) {
        it->second = "gzip";
      } else {
        headers.erase(it);
      }
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  auto api_handler = [this](const httplib::Request& req, httplib::Response& res) {
    int64_t start = MonotonicMs();
    HttpReply reply = api_.Handle(ToRequest(req));
    res.status = reply.status;
    res.set_header("Cache-Control", "no-store");
    res.set_content(reply.body, reply.content_type.c_str());
    if (config_.access_log) {
      Log(Cat(req.method, " ", req.path, " ", reply.status, " ", MonotonicMs() - start, "ms"));
    }
  };
  // The UI's files are public (they hold no data; every API call they make needs the token).
  auto ui_handler = [this, api_handler](const httplib::Request& req, httplib::Response& res) {
    if (req.path.starts_with("/api/") || req.path == "/metrics") return api_handler(req, res);
    std::string path = req.path == "/" ? "/index.html" : req.path;
    for (const UiAsset& a : UiAssets()) {
      if (path == a.path) {
        res.set_header("Content-Security-Policy",
                       "default-src 'self'; img-src 'self' data:; style-src 'self'");
        res.set_header("X-Content-Type-Options", "nosniff");
        res.set_content(reinterpret_cast<const char*>(a.data), a.size, a.content_type);
        return;
      }
    }
    res.status = 404;
    res.set_content("not found\n", "text/plain");
  };
  http_->Get(".*", ui_handler);
  http_->Post(".*", api_handler);
  http_->Put(".*", api_handler);
  http_->Patch(".*", api_handler);
  http_->Delete(".*", api_handler);
}

Server::~Server() { Stop(); }

absl::StatusOr<int> Server::Bind() {
  int port = config_.port;
  if (port == 0) {
    port = http_->bind_to_any_port(config_.host);
    if (port < 0) port = 0;
  } else if (!http_->bind_to_port(config_.host, port)) {
    port = 0;
  }
  if (port == 0) {
    return absl::UnavailableError(Cat("cannot listen on ", config_.host, ":", config_.port,
                                      " (in use, or not an address here)"));
  }
  return port;
}

void Server::Log(const std::string& line) {
  std::fprintf(stderr, "barge serve: %s\n", redact_(line).c_str());
}

void Server::Background() {
  for (int tick = 0; !stopping_; ++tick) {
    // Nothing a tick meets (a bad run, a bad schedule) may end the thread, and with it the
    // server: it is logged and the next tick goes on.
    try {
      BackgroundTick(tick);
    } catch (const std::exception& e) {
      Log(Cat("internal error in the background tick: ", e.what()));
    }
    std::unique_lock lock(mu_);
    wake_.wait_for(lock, std::chrono::milliseconds(config_.tick_ms),
                   [this] { return stopping_.load(); });
  }
}

void Server::BackgroundTick(int tick) {
  if (scheduler_ != nullptr) {
    absl::StatusOr<Scheduler::TickResult> r = scheduler_->Tick();
    if (!r.ok()) {
      Log(Cat("scheduler: ", r.status().message()));
    } else {
      for (const ScheduleFire& f : r->recorded) {
        Log(Cat("schedule ", f.schedule, ": slot ", IsoTime(f.slot), " ", f.outcome, ": ",
                f.run_id));
      }
      for (const std::string& e : r->errors) Log(e);
    }
  }
  if (absl::StatusOr<int64_t> n = store_.ReapExpired(config_.max_infra_failures); !n.ok()) {
    Log(Cat("reaping expired leases: ", n.status().message()));
  } else if (*n > 0) {
    Log(Cat("returned ", *n, " tasks with expired leases to the queue"));
  }
  if (tick % kAdvanceEveryTicks == 0) {
    // A run whose last tasks were reaped into failure has no worker left to advance it.
    if (absl::StatusOr<std::vector<RunRecord>> runs = store_.ListRuns({.limit = 200}); runs.ok()) {
      for (const RunRecord& r : *runs) {
        if (r.state == state::kRunning) (void)engine_.Advance(r.id);
      }
    }
  }
  if (autoscaler_ != nullptr) {
    if (absl::Status s = autoscaler_->Tick(); !s.ok()) Log(Cat("autoscaler: ", s.message()));
  }
}

void Server::Run() {
  std::thread background([this] { Background(); });
  http_->listen_after_bind();
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  background.join();
  if (autoscaler_ != nullptr) autoscaler_->StopAll();
}

void Server::Stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (http_) http_->stop();
}

}  // namespace barge

#include "server/server.h"

#include <httplib.h>

#include <cstdio>
#include <deque>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/strings.h"
#include "common/units.h"
#include "server/ui_assets.h"

namespace barge {
namespace {

constexpr size_t kMaxBody = 8 << 20;  // a pipeline spec is far smaller
constexpr int kAdvanceEveryTicks = 10;
// Each connection has a thread while it is open; this many at most (the rest wait their turn).
// A client that sends nothing, or a request head too slowly, loses its connection after
// kLimits.head_timeout_ms, so idle clients cannot hold the threads.
constexpr size_t kMaxConnectionThreads = 256;
// A request's body (8 MB at most) must arrive within a minute of its head.
constexpr ConnectionLimits kLimits = {
    .head_timeout_ms = 10'000, .max_head_bytes = 64 << 10, .body_timeout_ms = 60'000};
constexpr int64_t kSweepEveryMs = 100;
constexpr time_t kReadTimeoutSeconds = 5;    // per read: a stalled body
constexpr time_t kWriteTimeoutSeconds = 10;  // per write: a client that stopped reading
constexpr time_t kKeepAliveSeconds = 5;      // waiting for a connection's next request

// cpp-httplib's task queue: a thread per connection, started when every thread is busy, up to
// `max`. Threads stay until shutdown.
class ConnectionThreads : public httplib::TaskQueue {
 public:
  explicit ConnectionThreads(size_t max) : max_(max) {}
  ~ConnectionThreads() override { shutdown(); }

  void enqueue(std::function<void()> fn) override {
    absl::MutexLock lock(&mu_);
    jobs_.push_back(std::move(fn));
    if (idle_ < jobs_.size() && threads_.size() < max_) {
      threads_.emplace_back([this] { Work(); });
    }
  }

  // Called once the accept loop has ended: finishes the queued connections and joins.
  void shutdown() override {
    std::vector<std::thread> threads;
    {
      absl::MutexLock lock(&mu_);
      if (done_) return;
      done_ = true;
      threads.swap(threads_);
    }
    for (std::thread& t : threads) t.join();
  }

 private:
  bool HasWorkOrDone() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return done_ || !jobs_.empty(); }

  void Work() {
    absl::MutexLock lock(&mu_);
    for (;;) {
      ++idle_;
      mu_.Await(absl::Condition(this, &ConnectionThreads::HasWorkOrDone));
      --idle_;
      if (jobs_.empty()) return;
      std::function<void()> job = std::move(jobs_.front());
      jobs_.pop_front();
      mu_.Unlock();
      job();
      mu_.Lock();
    }
  }

  const size_t max_;
  absl::Mutex mu_;
  std::deque<std::function<void()>> jobs_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> threads_ ABSL_GUARDED_BY(mu_);
  size_t idle_ ABSL_GUARDED_BY(mu_) = 0;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
};

// Whether a request may reach its handler without the token: the UI's files (GET) and the
// health check (GET or HEAD), and only without a body (cpp-httplib would leave a GET's body
// unread, to be taken for the next request). Any other is refused before its body is read.
bool Public(const httplib::Request& req) {
  if (req.has_header("Transfer-Encoding")) return false;
  if (req.has_header("Content-Length") && req.get_header_value("Content-Length") != "0") {
    return false;
  }
  if (req.path == "/api/health") return req.method == "GET" || req.method == "HEAD";
  return req.method == "GET" && !req.path.starts_with("/api/") && req.path != "/metrics";
}

ApiRequest ToRequest(const httplib::Request& r) {
  ApiRequest out{.method = r.method, .path = r.path, .body = r.body};
  for (const auto& [k, v] : r.params) out.query[k] = v;
  out.authorization = r.get_header_value("Authorization");
  return out;
}

}  // namespace

Server::Server(RunStore& runs, TaskQueue& queue, Engine& engine, Api& api, ServerConfig config,
               Scheduler* scheduler, Autoscaler* autoscaler, const Redactor& redact)
    : runs_(runs),
      queue_(queue),
      engine_(engine),
      api_(api),
      config_(std::move(config)),
      scheduler_(scheduler),
      autoscaler_(autoscaler),
      redact_(redact),
      http_(std::make_unique<httplib::Server>()),
      guard_(kLimits) {
  // cpp-httplib's default also sets SO_REUSEPORT, with which a second server on the same port
  // starts too and the kernel splits the connections between the two. SO_REUSEADDR alone lets a
  // restarted server bind at once, and a second one fail.
  http_->set_socket_options([](socket_t sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  http_->set_payload_max_length(kMaxBody);
  http_->set_read_timeout(kReadTimeoutSeconds);
  http_->set_write_timeout(kWriteTimeoutSeconds);
  http_->set_keep_alive_timeout(kKeepAliveSeconds);
  http_->new_task_queue = [] { return new ConnectionThreads(kMaxConnectionThreads); };
  http_->set_logger([this](const httplib::Request& req, const httplib::Response&) {
    guard_.ResponseSent(req.remote_addr, req.remote_port, MonotonicMs());
    guard_.EndRefused(req.remote_addr, req.remote_port, port_);
  });
  // cpp-httplib prefers brotli when a browser offers it, at a quality that takes ~0.8 s for a
  // 10,000-attempt timeline; gzip is about as small here and fifty times faster. The handler
  // gets the request const, but httplib owns a mutable one.
  http_->set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    guard_.RequestStarted(req.remote_addr, req.remote_port, MonotonicMs());
    auto& headers = const_cast<httplib::Request&>(req).headers;
    auto it = headers.find("Accept-Encoding");
    if (it != headers.end()) {
      if (it->second.find("gzip") != std::string::npos) {
        it->second = "gzip";
      } else {
        headers.erase(it);
      }
    }
    // Without the token, nobody makes the server read (and wait for) a request body. The body
    // stays unread, so the connection cannot carry another request: cpp-httplib would take the
    // body for the next one (it decides on keep-alive before routing), so the guard shuts the
    // connection's writing side once the refusal is sent, and answers nothing more on it.
    if (guard_.Refused(req.remote_addr, req.remote_port)) {
      res.status = 400;
      return httplib::Server::HandlerResponse::Handled;
    }
    if (!Public(req) && !api_.Authorized(req.get_header_value("Authorization"))) {
      guard_.Refuse(req.remote_addr, req.remote_port);
      headers.erase("Connection");
      headers.emplace("Connection", "close");
      HttpReply reply = api_.Handle({.method = req.method, .path = req.path});
      res.status = reply.status;
      res.set_content(reply.body, reply.content_type.c_str());
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  auto api_handler = [this](const httplib::Request& req, httplib::Response& res) {
    guard_.HandlerStarted(req.remote_addr, req.remote_port);
    int64_t start = MonotonicMs();
    HttpReply reply = api_.Handle(ToRequest(req));
    res.status = reply.status;
    res.set_header("Cache-Control", "no-store");
    if (reply.stream) {
      // A large body goes out a part at a time, never whole in memory.
      res.set_chunked_content_provider(
          reply.content_type, [stream = std::move(reply.stream)](size_t, httplib::DataSink& sink) {
            std::string part;
            absl::StatusOr<bool> more = stream(part);
            if (!more.ok()) return false;
            if (!part.empty() && !sink.write(part.data(), part.size())) return false;
            if (!*more) sink.done();
            return true;
          });
    } else {
      res.set_content(reply.body, reply.content_type.c_str());
    }
    if (config_.access_log) {
      Log(Cat(req.method, " ", req.path, " ", reply.status, " ", MonotonicMs() - start, "ms"));
    }
  };
  // The UI's files are public (they hold no data; every API call they make needs the token).
  auto ui_handler = [this, api_handler](const httplib::Request& req, httplib::Response& res) {
    if (req.path.starts_with("/api/") || req.path == "/metrics") return api_handler(req, res);
    guard_.HandlerStarted(req.remote_addr, req.remote_port);
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
    return absl::FailedPreconditionError(
        Cat("cannot listen on ", config_.host, ":", config_.port,
            " (in use by another process, or not an address of this machine)"));
  }
  port_ = port;
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
    // Stop() sets stopping_ under mu_, and releasing mu_ evaluates the condition again.
    absl::MutexLock lock(&mu_);
    mu_.AwaitWithTimeout(absl::Condition(this, &Server::Stopping),
                         absl::Milliseconds(config_.tick_ms));
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
  if (absl::StatusOr<int64_t> n = queue_.ReapExpired(config_.max_infra_failures); !n.ok()) {
    Log(Cat("reaping expired leases: ", n.status().message()));
  } else if (*n > 0) {
    Log(Cat("returned ", *n, " tasks with expired leases to the queue"));
  }
  if (tick % kAdvanceEveryTicks == 0) {
    // A run whose last tasks were reaped into failure has no worker left to advance it.
    if (absl::StatusOr<std::vector<RunRecord>> runs =
            runs_.ListRuns({.state = std::string(state::kRunning)});
        runs.ok()) {
      for (const RunRecord& r : *runs) (void)engine_.Advance(r.id);
    }
  }
  if (autoscaler_ != nullptr) {
    if (absl::Status s = autoscaler_->Tick(); !s.ok()) Log(Cat("autoscaler: ", s.message()));
  }
}

void Server::Guard() {
  absl::MutexLock lock(&mu_);
  while (!http_done_) {
    // Once stopping, idle connections are closed at once: cpp-httplib waits for every
    // connection's thread before listen returns.
    int64_t now = MonotonicMs() + (stopping_ ? kLimits.head_timeout_ms + 1 : 0);
    mu_.Unlock();
    // A stop that came before cpp-httplib's accept loop began is lost by it: ask again.
    if (stopping_) http_->stop();
    guard_.Sweep(port_, now);
    mu_.Lock();
    mu_.AwaitWithTimeout(absl::Condition(this, &Server::HttpDone),
                         absl::Milliseconds(kSweepEveryMs));
  }
}

void Server::Run() {
  std::thread background([this] { Background(); });
  std::thread guard([this] { Guard(); });
  http_->listen_after_bind();
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    http_done_ = true;
  }
  background.join();
  guard.join();
  if (autoscaler_ != nullptr) autoscaler_->StopAll();
}

void Server::Stop() {
  {
    absl::MutexLock lock(&mu_);  // wakes the background and guard threads' waits
    stopping_ = true;
  }
  if (http_) http_->stop();
}

}  // namespace barge

// `barge serve`: the HTTP API and the web UI on one socket (cpp-httplib), and a background loop
// that fires schedules, reaps expired leases, advances runs no worker is advancing (every task
// reaped or cancelled), and runs the autoscaler.
//
// Clients that are slow or idle cannot starve it: each connection has its own thread (up to
// 256), a connection must deliver each request head within 10 s of opening or of its last
// response and in at most 64 KB (ConnectionGuard), each read or write waits at most 5 or 10 s, a
// body is at most 8 MB and is read only once the token is checked.
//
//   Server server(store, store, engine, api, {.host = "127.0.0.1", .port = 0}, &scheduler,
//                 &scaler);
//   ASSIGN_OR_RETURN(int port, server.Bind());
//   server.Run();    // until Stop() from another thread
//
// Thread-safety: Stop() may be called from any thread; the rest from the owning thread.
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "engine/engine.h"
#include "fleet/autoscaler.h"
#include "schedule/scheduler.h"
#include "server/api.h"
#include "server/connection_guard.h"
#include "store/run_store.h"
#include "store/task_queue.h"

namespace httplib {
class Server;
}

namespace barge {

struct ServerConfig {
  std::string host = "127.0.0.1";
  int port = 8080;  // 0: any free port
  int64_t tick_ms = 1'000;
  int max_infra_failures = 10;
  bool access_log = true;
};

class Server {
 public:
  // The background loop reaps expired leases in `queue` and advances the running runs of `runs`.
  // `scheduler` and `autoscaler` may be null (not run). All must outlive the server.
  Server(RunStore& runs, TaskQueue& queue, Engine& engine, Api& api, ServerConfig config,
         Scheduler* scheduler, Autoscaler* autoscaler, const Redactor& redact);
  ~Server();

  // Binds the socket; returns the port.
  absl::StatusOr<int> Bind();
  // Serves and runs the background loop until Stop().
  void Run();
  void Stop();

 private:
  void Background();
  // One pass of the background duties: schedules, expired leases, stranded runs, autoscaling.
  void BackgroundTick(int tick);
  // Shuts down connections that take too long to send a request (see ConnectionGuard).
  void Guard();
  void Log(const std::string& line);

  RunStore& runs_;
  TaskQueue& queue_;
  Engine& engine_;
  Api& api_;
  ServerConfig config_;
  Scheduler* scheduler_;
  Autoscaler* autoscaler_;
  const Redactor& redact_;
  std::unique_ptr<httplib::Server> http_;
  ConnectionGuard guard_;
  int port_ = 0;
  // Conditions the background and guard threads wait for.
  bool Stopping() const { return stopping_; }
  bool HttpDone() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return http_done_; }

  absl::Mutex mu_;  // set under it, stopping_ and http_done_ wake the threads that wait on it
  std::atomic<bool> stopping_{false};
  bool http_done_ ABSL_GUARDED_BY(mu_) = false;  // listen has returned: every connection is closed
};

}  // namespace barge

// Bounds what a client that never finishes a request can hold. cpp-httplib (Debian's 0.11.4)
// times out each read of a request on its own and counts neither the header lines nor the time a
// whole request head takes, so a client sending one header line every 3 s keeps a thread forever.
// This guard watches the server's connections from outside the library: a connection that has
// not delivered a complete request head within `head_timeout_ms` of opening (or of its last
// response), or has sent more than `max_head_bytes` meanwhile, is shut down, which ends the
// thread's read at once. So is one whose request body has not arrived within `body_timeout_ms`
// of its head (cpp-httplib's per-read timeout never fires on a body sent a byte every few
// seconds). A connection whose request is being handled (its response written) is never
// touched: the hooks RequestStarted/HandlerStarted/ResponseSent say which those are.
// A connection whose request was refused unread (Refuse) carries no further request: its
// writing side is shut down once the refusal is sent (EndRefused), so the client sees the end
// at once, and whatever it sends after is never answered.
//
//   ConnectionGuard guard({.head_timeout_ms = 10'000, .max_head_bytes = 64 << 10});
//   // pre-routing handler: guard.RequestStarted(req.remote_addr, req.remote_port, MonotonicMs());
//   // a route's handler: guard.HandlerStarted(req.remote_addr, req.remote_port);
//   // logger (after the response is written): guard.ResponseSent(req.remote_addr, ...);
//   // every 100 ms: guard.Sweep(port, MonotonicMs());
//
// Connections are found in /proc/self/fd as sockets whose local port is the server's and that
// have a peer. Thread-safety: every method may be called from any thread.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "absl/synchronization/mutex.h"

namespace barge {

struct ConnectionLimits {
  int64_t head_timeout_ms = 10'000;
  int64_t max_head_bytes = 64 << 10;
  int64_t body_timeout_ms = 60'000;  // from a complete head to its handler
};

class ConnectionGuard {
 public:
  explicit ConnectionGuard(ConnectionLimits limits) : limits_(limits) {}

  // A request head from this peer is complete: its body is read next.
  void RequestStarted(const std::string& addr, int port, int64_t now_ms);
  // The request's body is read: its handler runs (for as long as it needs).
  void HandlerStarted(const std::string& addr, int port);
  // This peer's request is refused without reading its body: the connection carries no more
  // requests. Refused says whether that happened.
  void Refuse(const std::string& addr, int port);
  bool Refused(const std::string& addr, int port);
  // After the refusal is written: shuts down the writing side of the refused peer's connection
  // to `local_port` (the client sees the end of the stream; nothing more is written to it).
  void EndRefused(const std::string& addr, int port, int local_port);
  // The response to this peer is written: the next request head's time starts.
  void ResponseSent(const std::string& addr, int port, int64_t now_ms);

  struct SweepResult {
    int open = 0;    // connections to the port
    int closed = 0;  // shut down by this sweep
  };
  // Looks at every connection to `port` and shuts down those past a limit.
  SweepResult Sweep(int port, int64_t now_ms);

 private:
  struct Peer {
    bool busy = false;          // from a request head to its response
    bool handling = false;      // its handler runs (its body is read)
    bool refused = false;       // see Refuse
    int64_t started_ms = 0;     // when the current request's head was complete
    int64_t idle_since_ms = 0;  // when the last response was written
    int64_t updated_ms = 0;
  };
  struct Connection {
    int fd = -1;
    std::string peer;
    int64_t opened_ms = 0;
    int64_t idle_from_ms = 0;    // start of the current wait for a request head
    uint64_t bytes_at_idle = 0;  // bytes received when that wait started
    bool shut = false;
  };

  const ConnectionLimits limits_;
  absl::Mutex mu_;
  std::map<std::string, Peer> peers_ ABSL_GUARDED_BY(mu_);           // by "addr:port"
  std::map<uint64_t, Connection> connections_ ABSL_GUARDED_BY(mu_);  // by socket inode
};

}  // namespace barge

// Bounds what a client that never finishes a request can hold. cpp-httplib (Debian's 0.11.4)
// times out each read of a request on its own and counts neither the header lines nor the time a
// whole request head takes, so a client sending one header line every 3 s keeps a thread forever.
// This guard watches the server's connections from outside the library: a connection that has
// not delivered a complete request head within `head_timeout_ms` of opening (or of its last
// response), or has sent more than `max_head_bytes` meanwhile, is shut down, which ends the
// thread's read at once. A connection whose request is being handled (its body read, its
// response written) is never touched: the hooks RequestStarted/ResponseSent say which those are.
//
//   ConnectionGuard guard({.head_timeout_ms = 10'000, .max_head_bytes = 64 << 10});
//   // pre-routing handler: guard.RequestStarted(req.remote_addr, req.remote_port, MonotonicMs());
//   // logger (after the response is written): guard.ResponseSent(req.remote_addr, ...);
//   // every 100 ms: guard.Sweep(port, MonotonicMs());
//
// Connections are found in /proc/self/fd as sockets whose local port is the server's and that
// have a peer. Thread-safety: every method may be called from any thread.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>

namespace barge {

struct ConnectionLimits {
  int64_t head_timeout_ms = 10'000;
  int64_t max_head_bytes = 64 << 10;
};

class ConnectionGuard {
 public:
  explicit ConnectionGuard(ConnectionLimits limits) : limits_(limits) {}

  // A request head from this peer is complete: its handler runs.
  void RequestStarted(const std::string& addr, int port, int64_t now_ms);
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
    bool busy = false;
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
  std::mutex mu_;
  std::map<std::string, Peer> peers_;           // by "addr:port"
  std::map<uint64_t, Connection> connections_;  // by socket inode
};

}  // namespace barge

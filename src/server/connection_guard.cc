#include "server/connection_guard.h"

// linux/tcp.h, not netinet/tcp.h: only the kernel's struct tcp_info has tcpi_bytes_received.
#include <dirent.h>
#include <linux/tcp.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstddef>
#include <cstdlib>
#include <set>
#include <string_view>

#include "common/strings.h"

namespace barge {
namespace {

// The local port of a socket, or -1.
int LocalPort(int fd) {
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return -1;
  if (addr.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in&>(addr).sin_port);
  if (addr.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6&>(addr).sin6_port);
  return -1;
}

// "addr:port" of the peer as cpp-httplib writes req.remote_addr and remote_port, or "" for a
// socket without one (the listening socket).
std::string PeerOf(int fd) {
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return "";
  char host[NI_MAXHOST];
  char port[NI_MAXSERV];
  if (::getnameinfo(reinterpret_cast<sockaddr*>(&addr), len, host, sizeof(host), port, sizeof(port),
                    NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
    return "";
  }
  return Cat(host, ":", port);
}

uint64_t BytesReceived(int fd) {
  tcp_info info{};
  socklen_t len = sizeof(info);
  if (::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) != 0 ||
      len < offsetof(tcp_info, tcpi_bytes_received) + sizeof(info.tcpi_bytes_received)) {
    return 0;
  }
  return info.tcpi_bytes_received;
}

// The inode of a socket descriptor, 0 for anything else.
uint64_t SocketInode(int fd) {
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode)) return 0;
  return st.st_ino;
}

// Calls `visit(fd, inode, peer)` for each of this process's TCP connections accepted on
// `local_port` (the listening socket itself has no peer and is skipped). False if this process's
// descriptors cannot be listed.
template <typename Visit>
bool ForEachConnection(int local_port, Visit visit) {
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) return false;
  while (dirent* e = ::readdir(dir)) {
    char* end = nullptr;
    long n = std::strtol(e->d_name, &end, 10);
    if (end == e->d_name || *end != '\0' || n == ::dirfd(dir)) continue;
    int fd = static_cast<int>(n);
    uint64_t inode = SocketInode(fd);
    if (inode == 0 || LocalPort(fd) != local_port) continue;
    std::string peer = PeerOf(fd);
    if (!peer.empty()) visit(fd, inode, peer);
  }
  ::closedir(dir);
  return true;
}

}  // namespace

void ConnectionGuard::RequestStarted(const std::string& addr, int port, int64_t now_ms) {
  absl::MutexLock lock(&mu_);
  Peer& p = peers_[Cat(addr, ":", port)];
  p.busy = true;
  p.handling = false;
  p.started_ms = now_ms;
  p.updated_ms = now_ms;
}

void ConnectionGuard::HandlerStarted(const std::string& addr, int port) {
  absl::MutexLock lock(&mu_);
  peers_[Cat(addr, ":", port)].handling = true;
}

void ConnectionGuard::Refuse(const std::string& addr, int port) {
  absl::MutexLock lock(&mu_);
  peers_[Cat(addr, ":", port)].refused = true;
}

bool ConnectionGuard::Refused(const std::string& addr, int port) {
  absl::MutexLock lock(&mu_);
  auto p = peers_.find(Cat(addr, ":", port));
  return p != peers_.end() && p->second.refused;
}

void ConnectionGuard::EndRefused(const std::string& addr, int port, int local_port) {
  if (!Refused(addr, port)) return;
  std::string refused = Cat(addr, ":", port);
  (void)ForEachConnection(local_port, [&](int fd, uint64_t, const std::string& peer) {
    if (peer == refused) ::shutdown(fd, SHUT_WR);
  });
}

void ConnectionGuard::ResponseSent(const std::string& addr, int port, int64_t now_ms) {
  absl::MutexLock lock(&mu_);
  Peer& p = peers_[Cat(addr, ":", port)];
  p.busy = false;
  p.idle_since_ms = now_ms;
  p.updated_ms = now_ms;
}

ConnectionGuard::SweepResult ConnectionGuard::Sweep(int port, int64_t now_ms) {
  SweepResult result;
  absl::MutexLock lock(&mu_);
  std::set<uint64_t> seen;
  std::set<std::string> peers_seen;
  bool listed = ForEachConnection(port, [&](int fd, uint64_t inode, const std::string& peer) {
    mu_.AssertHeld();  // held by the caller; the analysis does not see into the lambda
    ++result.open;
    seen.insert(inode);
    peers_seen.insert(peer);
    uint64_t bytes = BytesReceived(fd);
    auto [it, added] = connections_.try_emplace(inode);
    Connection& c = it->second;
    if (added) {
      c = {.fd = fd,
           .peer = peer,
           .opened_ms = now_ms,
           .idle_from_ms = now_ms,
           .bytes_at_idle = bytes};
    }
    if (c.shut) return;
    auto p = peers_.find(peer);
    bool body_too_slow = false;
    if (p != peers_.end() && p->second.busy) {
      c.idle_from_ms = now_ms;
      c.bytes_at_idle = bytes;
      body_too_slow =
          !p->second.handling && now_ms - p->second.started_ms > limits_.body_timeout_ms;
      if (!body_too_slow) return;
    }
    if (p != peers_.end() && p->second.idle_since_ms >= c.idle_from_ms) {
      c.idle_from_ms = p->second.idle_since_ms;
      c.bytes_at_idle = bytes;
    }
    bool too_slow = now_ms - c.idle_from_ms > limits_.head_timeout_ms;
    bool too_big = bytes - c.bytes_at_idle > static_cast<uint64_t>(limits_.max_head_bytes);
    // The descriptor is checked again just before: it must still be this connection.
    if ((too_slow || too_big || body_too_slow) && SocketInode(c.fd) == inode) {
      ::shutdown(c.fd, SHUT_RDWR);
      c.shut = true;
      ++result.closed;
    }
  });
  if (!listed) return result;  // nothing seen is no reason to forget what was
  std::erase_if(connections_, [&](const auto& kv) { return !seen.contains(kv.first); });
  // A refused peer's entry goes with its connection: a later connection from the same address
  // and port is a new one.
  std::erase_if(peers_, [&](const auto& kv) {
    return !peers_seen.contains(kv.first) &&
           (kv.second.refused || now_ms - kv.second.updated_ms > 2 * limits_.head_timeout_ms);
  });
  return result;
}

}  // namespace barge

// Hosts on one machine for the fleet tests: each host is a network namespace with a hostname of
// its own, joined to the others by a bridge, so processes on different "hosts" talk over a real
// network link that a test can cut.
//
//   std::string why;
//   std::unique_ptr<NetnsLab> lab = NetnsLab::Create(4, &why);  // nullptr: not root, no `ip`
//   StartBarge({"worker"}, lab->On(1));                          // runs on host 1
//   lab->Cut(1); ... lab->Restore(1);
#pragma once

#include <memory>
#include <string>
#include <vector>

namespace barge::testing {

class NetnsLab {
 public:
  // Builds `hosts` hosts (numbered from 0) on a private /24. Returns nullptr, with the reason in
  // `why`, where network namespaces are not available.
  static std::unique_ptr<NetnsLab> Create(int hosts, std::string* why);
  ~NetnsLab();  // removes every namespace and link it made

  std::string Address(int host) const;  // the host's IPv4 address
  std::string Subnet() const;           // "10.x.y.0/24"
  // A command prefix that runs the rest of argv on `host`.
  std::vector<std::string> On(int host) const;
  // Takes the host's link down (packets to and from it are dropped) and back up.
  void Cut(int host) const;
  void Restore(int host) const;

 private:
  NetnsLab() = default;
  std::string Namespace(int host) const;
  std::string Veth(int host) const;  // its bridge-side end
  std::string tag_;                  // unique per test process
  std::string net_;                  // "10.x.y."
  int hosts_ = 0;
};

// Runs a shell command; returns its exit status (0 = success).
int Sh(const std::string& command);
// Runs argv and returns its stdout ("" and sets *ok=false on failure).
std::string Capture(const std::vector<std::string>& argv, bool* ok);

// A command prefix that runs a program in a mount namespace of its own in which `dir` is an
// empty tmpfs: a worker that cannot see the submitter's files. Empty, with `why`, if this
// machine cannot make one (mount namespaces need root).
std::vector<std::string> HidingPrefix(const std::string& dir, std::string* why);

}  // namespace barge::testing

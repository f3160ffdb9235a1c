#include "netns_lab.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "common/shell.h"
#include "common/strings.h"

namespace barge::testing {

int Sh(const std::string& command) {
  int status = std::system(Cat(command, " >/dev/null 2>&1").c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string Capture(const std::vector<std::string>& argv, bool* ok) {
  std::vector<std::string> quoted;
  for (const std::string& a : argv) quoted.push_back(ShellQuote(a));
  FILE* pipe = ::popen(Join(quoted, " ").c_str(), "r");
  std::string out;
  if (pipe == nullptr) {
    *ok = false;
    return out;
  }
  char buf[4096];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, pipe)) > 0;) out.append(buf, n);
  int status = ::pclose(pipe);
  *ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
  return out;
}

std::vector<std::string> HidingPrefix(const std::string& dir, std::string* why) {
  std::vector<std::string> prefix = {"unshare",
                                     "--mount",
                                     "--propagation",
                                     "private",
                                     "sh",
                                     "-c",
                                     "mount -t tmpfs tmpfs \"$0\" && exec \"$@\"",
                                     dir};
  std::filesystem::create_directories(dir);
  std::string probe_file = dir + "/.hidden-probe";
  { std::ofstream(probe_file) << "x"; }
  std::vector<std::string> probe = prefix;
  probe.insert(probe.end(), {"test", "!", "-e", probe_file});
  bool ok = false;
  Capture(probe, &ok);
  std::filesystem::remove(probe_file);
  if (ok) return prefix;
  *why = "cannot hide a directory in a mount namespace here (mount namespaces need root)";
  return {};
}

std::unique_ptr<NetnsLab> NetnsLab::Create(int hosts, std::string* why) {
  if (::geteuid() != 0) {
    *why = "not root";
    return nullptr;
  }
  if (Sh("{ command -v ip && command -v unshare; }") != 0) {
    *why = "no `ip` or `unshare` command";
    return nullptr;
  }
  std::unique_ptr<NetnsLab> lab(new NetnsLab());
  int pid = static_cast<int>(::getpid());
  lab->tag_ = Cat("b", pid % 100000);
  lab->net_ = Cat("10.", 100 + (pid >> 8) % 100, ".", pid & 255, ".");
  std::string br = Cat(lab->tag_, "br");
  std::vector<std::string> commands = {
      Cat("ip link add ", br, " type bridge forward_delay 0"),
      Cat("ip addr add ", lab->net_, "1/24 dev ", br),
      Cat("ip link set ", br, " up"),
  };
  for (int h = 0; h < hosts; ++h) {
    std::string ns = lab->Namespace(h), outer = lab->Veth(h), inner = Cat(lab->tag_, "n", h);
    for (const std::string& c : std::vector<std::string>{
             Cat("ip netns add ", ns),
             Cat("ip link add ", outer, " type veth peer name ", inner),
             Cat("ip link set ", inner, " netns ", ns),
             Cat("ip link set ", outer, " master ", br, " up"),
             Cat("ip -n ", ns, " link set lo up"),
             Cat("ip -n ", ns, " link set ", inner, " name eth0"),
             Cat("ip -n ", ns, " addr add ", lab->Address(h), "/24 dev eth0"),
             Cat("ip -n ", ns, " link set eth0 up"),
         }) {
      commands.push_back(c);
    }
  }
  lab->hosts_ = hosts;  // the destructor removes whatever part of this was made
  for (const std::string& c : commands) {
    if (Sh(c) != 0) {
      *why = Cat("`", c, "` failed");
      return nullptr;
    }
  }
  return lab;
}

NetnsLab::~NetnsLab() {
  for (int h = 0; h < hosts_; ++h) {
    Sh(Cat("ip link del ", Veth(h)));
    Sh(Cat("ip netns del ", Namespace(h)));
  }
  Sh(Cat("ip link del ", tag_, "br"));
}

std::string NetnsLab::Address(int host) const { return Cat(net_, 10 + host); }
std::string NetnsLab::Subnet() const { return Cat(net_, "0/24"); }
std::string NetnsLab::Namespace(int host) const { return Cat("barge-", tag_, "-h", host); }
std::string NetnsLab::Veth(int host) const { return Cat(tag_, "h", host); }

std::vector<std::string> NetnsLab::On(int host) const {
  // A UTS namespace of its own gives the host its own hostname, as a separate machine has.
  return {
      "unshare",      "--uts",
      "--",           "sh",
      "-c",           "hostname \"$1\" && ns=$2 && shift 2 && exec ip netns exec \"$ns\" \"$@\"",
      "sh",           Cat("host", host, "-", tag_),
      Namespace(host)};
}

void NetnsLab::Cut(int host) const { Sh(Cat("ip link set ", Veth(host), " down")); }
void NetnsLab::Restore(int host) const { Sh(Cat("ip link set ", Veth(host), " up")); }

}  // namespace barge::testing

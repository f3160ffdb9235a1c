// `barge serve` under a hostile or careless client: slow clients that never finish a request,
// logs far larger than memory, and log slices that try to uncover a secret a few bytes at a time.
#include <arpa/inet.h>
#include <fcntl.h>
#include <httplib.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <fstream>
#include <mutex>
#include <thread>

#include "common/strings.h"
#include "server_fixture.h"

namespace barge::testing {
namespace {

constexpr char kToken[] = "test-token-0123456789abcdef";

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// A field of /proc/<pid>/status in kB (or a count, for Threads), -1 if absent.
int64_t ProcStatus(pid_t pid, const std::string& field) {
  std::ifstream in(Cat("/proc/", pid, "/status"));
  for (std::string line; std::getline(in, line);) {
    if (line.starts_with(field + ":")) return std::stoll(line.substr(field.size() + 1));
  }
  return -1;
}

int ConnectTo(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

class ServeHardeningTest : public ServerTest {
 protected:
  ServeHardeningTest() : ServerTest(kToken) {}
  void TearDown() override {
    ::unsetenv("AWS_SECRET_ACCESS_KEY");
    ::unsetenv("AWS_SESSION_TOKEN");
    ServerTest::TearDown();
  }

  // The pid of the `barge serve` running in dir().
  pid_t ServerPid() {
    for (const auto& e : std::filesystem::directory_iterator("/proc")) {
      std::string name = e.path().filename().string();
      if (name.find_first_not_of("0123456789") != std::string::npos) continue;
      std::error_code ec;
      if (std::filesystem::read_symlink(e.path() / "cwd", ec) != dir() || ec) continue;
      std::string cmdline = Read((e.path() / "cmdline").string());
      if (cmdline.find(std::string("serve\0", 6)) != std::string::npos) return std::stoi(name);
    }
    return -1;
  }

  // A client whose calls give up after `timeout_s`.
  std::unique_ptr<httplib::Client> Client(int timeout_s) {
    auto c = std::make_unique<httplib::Client>("127.0.0.1", server_.port());
    c->set_connection_timeout(timeout_s, 0);
    c->set_read_timeout(timeout_s, 0);
    c->set_write_timeout(timeout_s, 0);
    c->set_default_headers({{"Authorization", Cat("Bearer ", kToken)}});
    return c;
  }

  nlohmann::json GetJson(const std::string& path) {
    httplib::Result r = Client(60)->Get(path);
    EXPECT_TRUE(r) << path;
    if (!r) return nullptr;
    EXPECT_EQ(r->status, 200) << path << ": " << r->body;
    return nlohmann::json::parse(r->body, nullptr, false);
  }

  // Runs a one-task pipeline and returns its run id; the task's log is at LogPath(id).
  std::string RunOneTask() {
    Write("one.yaml", "name: one\nsteps:\n  - name: s\n    run: echo hello\n");
    Result r = Barge({"run", "one.yaml"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return RunIdFrom(r);
  }
  std::string LogPath(const std::string& id) {
    nlohmann::json task = GetJson(Cat("/api/runs/", id, "/tasks/s/0"));
    return task["attempt_history"][0]["log"];
  }
};

TEST_F(ServeHardeningTest, FiftySlowClientsCannotStarveTheServer) {
  StartServer({});
  pid_t pid = ServerPid();
  ASSERT_GT(pid, 0);
  int64_t threads_before = ProcStatus(pid, "Threads");
  int64_t rss_before = ProcStatus(pid, "VmRSS");

  // Fifty connections that each send a request line and then one header line a second, never
  // the blank line that ends the head. They connect 10 ms apart: a burst of connects on
  // cpp-httplib's backlog of 5 gets some of them closed at once, which would spoil the count.
  constexpr int kSlow = 50;
  std::vector<int> fds;
  for (int i = 0; i < kSlow; ++i) {
    int fd = ConnectTo(server_.port());
    ASSERT_GE(fd, 0);
    fds.push_back(fd);
    std::this_thread::sleep_for(std::chrono::milliseconds(10));  // the attack's pace
  }
  const int64_t opened = NowMs();
  std::mutex mu;
  std::condition_variable cv;
  bool stop = false;
  std::atomic<int> rounds{0};
  std::atomic<int> closed{0};
  std::atomic<int> answered{0};
  std::vector<int64_t> closed_after_ms(kSlow, -1);
  std::thread slow_clients([&] {
    std::vector<bool> done(kSlow, false);
    for (int round = 0;; ++round) {
      for (int i = 0; i < kSlow; ++i) {
        if (done[i]) continue;
        char c;
        ssize_t n = ::recv(fds[i], &c, 1, MSG_DONTWAIT);
        std::string line = round == 0 ? std::string("GET /api/health HTTP/1.1\r\n")
                                      : Cat("X-Slow-", round, ": a\r\n");
        bool gone = n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) ||
                    ::send(fds[i], line.data(), line.size(), MSG_NOSIGNAL) < 0;
        if (n > 0) ++answered;  // the server took an unfinished head as a request
        if (gone || n > 0) {
          done[i] = true;
          closed_after_ms[i] = NowMs() - opened;
          ++closed;
        }
      }
      ++rounds;
      // The attack's own pace (one line a second), not a wait for the server.
      std::unique_lock lock(mu);
      if (cv.wait_for(lock, std::chrono::seconds(1), [&] { return stop; })) return;
    }
  });
  // Stops and joins the slow clients however the test ends.
  struct Joiner {
    std::function<void()> run;
    ~Joiner() { run(); }
  } joiner{[&] {
    {
      std::lock_guard lock(mu);
      stop = true;
    }
    cv.notify_all();
    if (slow_clients.joinable()) slow_clients.join();
    for (int fd : fds) ::close(fd);
    fds.clear();
  }};
  WaitUntil([&] { return rounds >= 3; }, "the slow clients sent three lines each");

  int64_t threads_during = ProcStatus(pid, "Threads");
  int64_t rss_during = ProcStatus(pid, "VmRSS");
  int closed_at_first_answer = -1;
  for (int probe = 0; probe < 3; ++probe) {
    for (const char* path : {"/api/health", "/api/runs"}) {
      int64_t start = NowMs();
      httplib::Result r = Client(5)->Get(path);
      int64_t took = NowMs() - start;
      std::printf("%s with %d slow clients open: %lld ms\n", path, kSlow,
                  static_cast<long long>(took));
      ASSERT_TRUE(r) << path << " with " << kSlow
                     << " slow clients open: " << httplib::to_string(r.error()) << " after " << took
                     << " ms";
      EXPECT_EQ(r->status, 200) << path;
      if (closed_at_first_answer < 0) closed_at_first_answer = closed;
      // Generous for a loaded machine: starved, the request would not be answered at all.
      EXPECT_LT(took, 5000) << path;
    }
  }
  EXPECT_EQ(closed_at_first_answer, 0) << "the slow clients were still open while the API answered";

  // The server ends every unfinished head after its limit (10 s), whatever the client does:
  // not before, and long before a minute (without the guard, never).
  WaitUntil([&] { return closed == kSlow; }, "the server closed every slow connection",
            std::chrono::seconds(70));
  joiner.run();
  EXPECT_EQ(answered, 0);
  for (int i = 0; i < kSlow; ++i) {
    EXPECT_GE(closed_after_ms[i], 9'000) << "connection " << i;
    EXPECT_LT(closed_after_ms[i], 60'000) << "connection " << i;
  }
  EXPECT_EQ(Client(5)->Get("/api/health")->status, 200);
  std::printf(
      "server with %d slow clients: %lld threads (%lld before), VmRSS %lld kB (%lld kB "
      "before)\n",
      kSlow, static_cast<long long>(threads_during), static_cast<long long>(threads_before),
      static_cast<long long>(rss_during), static_cast<long long>(rss_before));
}

// Sends `head`, then (if `trickle`) one byte of body a second, and reads whatever the server
// sends until it ends the stream or `limit` passes.
struct Exchange {
  std::string received;
  bool ended = false;  // the server ended the stream (EOF)
  int64_t ended_after_ms = -1;
};
Exchange Talk(int port, const std::string& head, const std::string& later, bool trickle,
              std::chrono::seconds limit) {
  Exchange out;
  int fd = ConnectTo(port);
  if (fd < 0) return out;
  const int64_t start = NowMs();
  ::send(fd, head.data(), head.size(), MSG_NOSIGNAL);
  if (!later.empty()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the attack's pace
    ::send(fd, later.data(), later.size(), MSG_NOSIGNAL);
  }
  int64_t next_byte = start + 1000;
  while (NowMs() - start < std::chrono::milliseconds(limit).count()) {
    pollfd p{.fd = fd, .events = POLLIN, .revents = 0};
    if (::poll(&p, 1, 100) > 0) {
      char buf[4096];
      ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
      if (n <= 0) {
        out.ended = true;
        out.ended_after_ms = NowMs() - start;
        break;
      }
      out.received.append(buf, n);
    }
    if (trickle && NowMs() >= next_byte) {
      ::send(fd, "x", 1, MSG_NOSIGNAL);
      next_byte += 1000;
    }
  }
  ::close(fd);
  return out;
}

int CountResponses(const std::string& received) {
  int n = 0;
  for (size_t at = received.find("HTTP/1.1 "); at != std::string::npos;
       at = received.find("HTTP/1.1 ", at + 1)) {
    ++n;
  }
  return n;
}

TEST_F(ServeHardeningTest, AnUnauthenticatedBodyIsNeverRead) {
  StartServer({});
  // A POST that announces 8 MB and sends nothing more: without the token it is answered at
  // once, and the connection ends there. Its body, sent after the head, is a request of its
  // own; it is never read as one (it was, and answered 200 on the same connection).
  std::string smuggled = "GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n";
  std::string head =
      Cat("POST /api/runs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
          "Content-Length: ",
          smuggled.size(), "\r\n\r\n");
  Exchange e = Talk(server_.port(), head, smuggled, false, std::chrono::seconds(30));
  std::printf("refused connection ended after %lld ms\n", static_cast<long long>(e.ended_after_ms));
  EXPECT_EQ(e.received.rfind("HTTP/1.1 401", 0), 0u) << e.received;
  EXPECT_EQ(CountResponses(e.received), 1) << e.received;
  EXPECT_TRUE(e.ended) << "the connection was kept open";
  EXPECT_LT(e.ended_after_ms, 5'000) << "the keep-alive timeout, not the refusal, ended it";
}

// /api/health is public for GET and HEAD only: a POST to it with a body trickled a byte a
// second held a server thread for as long as the client liked (256 of them took every thread).
TEST_F(ServeHardeningTest, ATrickledBodyToTheHealthCheckIsRefusedAtOnce) {
  StartServer({});
  for (const char* method : {"POST", "PUT", "GET"}) {
    std::string head =
        Cat(method, " /api/health HTTP/1.1\r\nHost: x\r\nContent-Length: 8000000\r\n\r\n");
    Exchange e = Talk(server_.port(), head, "", true, std::chrono::seconds(30));
    std::printf("%s /api/health with a trickled body: ended after %lld ms\n", method,
                static_cast<long long>(e.ended_after_ms));
    EXPECT_EQ(CountResponses(e.received), 1) << method << ": " << e.received;
    if (std::string(method) != "GET") {
      EXPECT_EQ(e.received.rfind("HTTP/1.1 401", 0), 0u) << method << ": " << e.received;
    }
    EXPECT_TRUE(e.ended) << method << ": the server still reads the body after 30 s";
    EXPECT_LT(e.ended_after_ms, 5'000) << method;
  }
  EXPECT_EQ(Client(5)->Get("/api/health")->status, 200);
}

TEST_F(ServeHardeningTest, AHugeLogIsReadOnlyWhereAskedAndStreamed) {
  StartServer({});
  std::string id = RunOneTask();
  std::string path = LogPath(id);
  // 200 MB of numbered 64-byte lines, then a known last 100 bytes.
  constexpr int64_t kLine = 64;
  constexpr int64_t kLines = (200 << 20) / kLine;
  auto line_at = [](int64_t i) {
    std::string l = Cat("line ", i, " ");
    l.resize(kLine - 1, '.');
    return l + "\n";
  };
  std::string tail(99, 'T');
  tail += "\n";
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    std::string block;
    for (int64_t i = 0; i < kLines; ++i) {
      block += line_at(i);
      if (block.size() >= (1 << 20)) {
        out << block;
        block.clear();
      }
    }
    out << block << tail;
  }
  const int64_t size = kLines * kLine + 100;
  ASSERT_EQ(static_cast<int64_t>(std::filesystem::file_size(path)), size);

  pid_t pid = ServerPid();
  ASSERT_GT(pid, 0);
  nlohmann::json small = GetJson(Cat("/api/runs/", id, "/tasks/s/0/log?tail=10"));
  int64_t hwm_before = ProcStatus(pid, "VmHWM");

  // Three tails at once, as three browsers showing the task.
  std::vector<std::thread> readers;
  std::vector<nlohmann::json> tails(3);
  for (int i = 0; i < 3; ++i) {
    readers.emplace_back(
        [&, i] { tails[i] = GetJson(Cat("/api/runs/", id, "/tasks/s/0/log?tail=100")); });
  }
  for (std::thread& t : readers) t.join();
  for (const nlohmann::json& t : tails) {
    ASSERT_TRUE(t.is_object());
    EXPECT_EQ(t["text"], tail);
    EXPECT_EQ(t["size"], size);
    EXPECT_EQ(t["offset"], size - 100);
  }
  int64_t from = 1'000'000 * kLine + 5;
  nlohmann::json range =
      GetJson(Cat("/api/runs/", id, "/tasks/s/0/log?offset=", from, "&length=20"));
  EXPECT_EQ(range["text"], line_at(1'000'000).substr(5, 20));
  int64_t hwm_tails = ProcStatus(pid, "VmHWM");
  EXPECT_LT(hwm_tails - hwm_before, 64 << 10) << "kB more at peak after three tails";

  // The whole log, streamed: the response is larger than the log (escaped newlines).
  auto client = Client(300);
  int64_t received = 0;
  std::string first, last;
  httplib::Result whole =
      client->Get(Cat("/api/runs/", id, "/tasks/s/0/log"), {{"Accept-Encoding", "identity"}},
                  [&](const char* data, size_t n) {
                    if (first.size() < 200) first.append(data, n);
                    last.append(data, n);
                    if (last.size() > 400) last.erase(0, last.size() - 200);
                    received += static_cast<int64_t>(n);
                    return true;
                  });
  ASSERT_TRUE(whole) << httplib::to_string(whole.error());
  EXPECT_EQ(whole->status, 200);
  EXPECT_EQ(received, size + kLines + 1 + static_cast<int64_t>(first.find("line 0 ")) + 2)
      << "every byte once, each newline escaped as \\n, then \"}";
  EXPECT_NE(first.find(Cat("\"size\":", size)), std::string::npos) << first;
  EXPECT_TRUE(last.ends_with(std::string(99, 'T') + "\\n\"}")) << last;
  int64_t hwm_whole = ProcStatus(pid, "VmHWM");
  EXPECT_LT(hwm_whole - hwm_before, 64 << 10) << "kB more at peak after the whole log";

  // `barge logs` streams it too.
  pid_t logs = StartBarge({"logs", id, "s", "0"});
  int status = 0;
  rusage usage{};
  ASSERT_EQ(::wait4(logs, &status, 0, &usage), logs);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  EXPECT_LT(usage.ru_maxrss, 96 << 10) << "kB at peak in barge logs";
  std::printf(
      "serve VmHWM: %lld kB before, %lld kB after three tails=100 of a %lld-byte log, %lld kB "
      "after reading it whole; barge logs peak RSS %ld kB\n",
      static_cast<long long>(hwm_before), static_cast<long long>(hwm_tails),
      static_cast<long long>(size), static_cast<long long>(hwm_whole), usage.ru_maxrss);
}

TEST_F(ServeHardeningTest, LogSlicesNeverShowAPartOfASecret) {
  // A secret with a quote and a backslash, which JSON escaping would disguise.
  const std::string secret = R"(Se"cr\et-XYZ12)";
  ::setenv("AWS_SECRET_ACCESS_KEY", secret.c_str(), 1);
  StartServer({});
  std::string id = RunOneTask();
  std::string log = Cat("before ", secret, " mid ", secret, secret, " end\n");
  { std::ofstream(LogPath(id), std::ios::binary | std::ios::trunc) << log; }
  const std::string redacted = "before [redacted] mid [redacted] end\n";
  std::string base = Cat("/api/runs/", id, "/tasks/s/0/log");
  auto client = Client(60);
  auto text_of = [&](const std::string& query) -> std::string {
    httplib::Result r = client->Get(base + query);
    EXPECT_TRUE(r && r->status == 200) << query;
    if (!r) return "";
    EXPECT_EQ(r->body.find("XYZ12"), std::string::npos) << query << ": " << r->body;
    nlohmann::json j = nlohmann::json::parse(r->body, nullptr, false);
    return j.is_object() ? j["text"].get<std::string>() : "";
  };
  auto shows_part = [&](const std::string& text) {
    for (size_t len = 4; len <= secret.size(); ++len) {
      for (size_t at = 0; at + len <= secret.size(); ++at) {
        if (text.find(secret.substr(at, len)) != std::string::npos) return true;
      }
    }
    return false;
  };
  EXPECT_EQ(text_of(""), redacted);
  // Every slice of width 1 to 8 at every offset, and every tail: none shows 4 bytes of the
  // secret, and the slices of one width, read in order, join to the redacted log.
  for (int width = 1; width <= 8; ++width) {
    for (size_t phase = 0; phase < static_cast<size_t>(width); ++phase) {
      std::string joined = phase == 0 ? "" : text_of(Cat("?offset=0&length=", phase));
      for (size_t offset = phase; offset < log.size(); offset += width) {
        std::string slice = text_of(Cat("?offset=", offset, "&length=", width));
        EXPECT_FALSE(shows_part(slice))
            << "offset " << offset << " length " << width << ": " << slice;
        joined += slice;
      }
      EXPECT_EQ(joined, redacted) << "width " << width << " from " << phase;
    }
  }
  for (size_t tail = 1; tail <= log.size(); ++tail) {
    std::string slice = text_of(Cat("?tail=", tail));
    EXPECT_FALSE(shows_part(slice)) << "tail " << tail << ": " << slice;
  }
}

TEST_F(ServeHardeningTest, TheSessionTokenIsMaskedLikeTheSecretKey) {
  const std::string token = "FwoGZXIvYXdzEXAMPLESESSIONTOKEN0123";
  ::setenv("AWS_SESSION_TOKEN", token.c_str(), 1);
  StartServer({});
  std::string id = RunOneTask();
  { std::ofstream(LogPath(id), std::ios::binary | std::ios::trunc) << "token " << token << "\n"; }
  httplib::Result r = Client(60)->Get(Cat("/api/runs/", id, "/tasks/s/0/log"));
  ASSERT_TRUE(r && r->status == 200);
  EXPECT_EQ(r->body.find("EXAMPLESESSION"), std::string::npos) << r->body;
  EXPECT_NE(r->body.find("token [redacted]"), std::string::npos) << r->body;
}

TEST_F(ServeHardeningTest, ARunsDeclaredSecretsAreMaskedInItsLogsAndParams) {
  StartServer({});
  Write("sec.yaml", R"(name: sec
params: {pw: hunter2-pw-value}
secrets: [pw]
steps:
  - name: s
    run: echo connecting with {params.pw}
)");
  Result run = Barge({"run", "sec.yaml"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  std::string id = RunIdFrom(run);
  httplib::Result r = Client(60)->Get(Cat("/api/runs/", id, "/tasks/s/0/log"));
  ASSERT_TRUE(r && r->status == 200);
  EXPECT_EQ(r->body.find("hunter2"), std::string::npos) << r->body;
  EXPECT_NE(r->body.find("connecting with [redacted]"), std::string::npos) << r->body;
  nlohmann::json shown = GetJson(Cat("/api/runs/", id));
  EXPECT_EQ(shown["params"]["pw"], "[redacted]") << shown.dump();
  // The task itself got the value.
  EXPECT_NE(Read(LogPath(id)).find("connecting with hunter2-pw-value"), std::string::npos);

  // An error that quotes the query, and a registered pipeline's defaults, are masked too.
  Write("pipelines/reg.yaml", R"(name: reg
params: {pw: hunter2-pw-value}
secrets: [pw]
steps:
  - name: q
    sql: SELECT '{params.pw}' AS k, no_such_column
)");
  Result failed = Barge({"run", "pipelines/reg.yaml"});
  ASSERT_EQ(failed.exit_code, 1) << failed.err;
  std::string failed_id = RunIdFrom(failed);
  httplib::Result task = Client(60)->Get(Cat("/api/runs/", failed_id, "/tasks/q/0"));
  ASSERT_TRUE(task && task->status == 200);
  EXPECT_EQ(task->body.find("hunter2"), std::string::npos) << task->body;
  EXPECT_NE(task->body.find("no_such_column"), std::string::npos) << task->body;
  httplib::Result shown_run = Client(60)->Get(Cat("/api/runs/", failed_id));
  ASSERT_TRUE(shown_run && shown_run->status == 200);
  EXPECT_EQ(shown_run->body.find("hunter2"), std::string::npos) << shown_run->body;
}

TEST_F(ServeHardeningTest, ARegisteredPipelinesSecretDefaultsAreMasked) {
  Write("pipelines/reg.yaml", R"(name: reg
params: {pw: hunter2-pw-value, day: "2026-01-01"}
secrets: [pw]
steps:
  - name: s
    run: "true"
)");
  StartServer({"--pipelines", (dir() / "pipelines").string()});
  nlohmann::json listed = GetJson("/api/pipelines");
  ASSERT_EQ(listed.size(), 1u) << listed.dump();
  EXPECT_EQ(listed[0]["params"]["pw"], "[redacted]") << listed.dump();
  EXPECT_EQ(listed[0]["params"]["day"], "2026-01-01") << listed.dump();
}

}  // namespace
}  // namespace barge::testing

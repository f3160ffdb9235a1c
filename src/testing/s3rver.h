// Test support: a real S3 protocol server (s3rver, from scripts/fetch_s3rver.sh) on a loopback
// port, with one bucket; the environment that points barge and the AWS CLI at it; and the
// fault-injecting, signature-checking proxy (tests/s3_fault_proxy.py) in front of it.
//
//   S3rver* server = S3rver::Shared();   // nullptr: not installed (the reason in Why())
//   server->ExportEnvironment();
//   auto store = OpenObjectStore(server->Url("my-test-prefix"));
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "common/strings.h"

namespace barge {

// A child process that prints "listening on 127.0.0.1:PORT" when ready. It dies with the test
// process however that ends; its stderr goes to `log`.
class ListeningProcess {
 public:
  ListeningProcess() = default;
  ListeningProcess(const ListeningProcess&) = delete;
  ListeningProcess& operator=(const ListeningProcess&) = delete;
  ~ListeningProcess() { Stop(); }

  bool Start(std::vector<std::string> argv, const std::string& log) {
    int out[2];
    if (::pipe(out) != 0) return false;
    pid_ = ::fork();
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      ::dup2(out[1], 1);
      int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (fd >= 0) ::dup2(fd, 2);
      ::close(out[0]);
      std::vector<char*> args;
      for (std::string& a : argv) args.push_back(a.data());
      args.push_back(nullptr);
      ::execvp(args[0], args.data());
      ::_exit(127);
    }
    ::close(out[1]);
    FILE* in = ::fdopen(out[0], "r");
    char line[512];
    while (std::fgets(line, sizeof line, in) != nullptr) {
      std::string_view l(line);
      size_t at = l.find("listening on 127.0.0.1:");
      if (at != std::string_view::npos) {
        port_ = std::atoi(line + at + 23);
        break;
      }
    }
    // Keep draining its output so that it never blocks on a full pipe.
    std::thread([in] {
      char buf[4096];
      while (std::fread(buf, 1, sizeof buf, in) > 0) {
      }
      std::fclose(in);
    }).detach();
    return port_ > 0;
  }
  void Stop() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      ::waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
  }
  int port() const { return port_; }
  std::string Endpoint() const { return Cat("http://127.0.0.1:", port_); }

 private:
  pid_t pid_ = -1;
  int port_ = 0;
};

class S3rver {
 public:
  static constexpr const char* kBucket = "barge-test";

  // One server per test process, started on first use and stopped at exit.
  static S3rver* Shared() {
    static S3rver* server = [] {
      auto* s = new S3rver();
      if (s->Start()) std::atexit([] { Shared()->Stop(); });
      return s;
    }();
    return server->process_.port() > 0 ? server : nullptr;
  }
  static std::string Why() { return Shared() == nullptr ? LastError() : ""; }

  std::string Endpoint() const { return process_.Endpoint(); }
  std::string Url(std::string_view prefix) const { return Cat("s3://", kBucket, "/", prefix); }
  // Where s3rver keeps its objects (one file per object): the listing proxy reads keys from
  // here, because s3rver's own paging sorts "a1/" before "a1.log" and drops keys at page
  // boundaries.
  const std::string& DataDir() const { return dir_; }
  // Multipart uploads begun and neither completed nor aborted.
  int DanglingUploads() const {
    std::error_code ec;
    std::filesystem::path uploads = std::filesystem::path(dir_) / kBucket / "._S3rver_uploads";
    int n = 0;
    for (auto it = std::filesystem::directory_iterator(uploads, ec);
         !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
      ++n;
    }
    return n;
  }
  // Points the AWS environment of this process (and its children) at `endpoint` (default:
  // the server itself).
  void ExportEnvironment(const std::string& endpoint = "") const {
    ::setenv("AWS_ENDPOINT_URL", (endpoint.empty() ? Endpoint() : endpoint).c_str(), 1);
    ::setenv("AWS_ACCESS_KEY_ID", "S3RVER", 1);  // s3rver accepts only this key
    ::setenv("AWS_SECRET_ACCESS_KEY", "S3RVER", 1);
    ::setenv("AWS_REGION", "us-east-1", 1);
    ::setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
    ::unsetenv("AWS_SESSION_TOKEN");
    ::unsetenv("AWS_PROFILE");
  }

 private:
  static std::string& LastError() {
    static std::string e;
    return e;
  }
  bool Start() {
    std::string bin = Cat(BARGE_SOURCE_DIR, "/.deps/s3rver/node_modules/s3rver/bin/s3rver.js");
    if (!std::filesystem::exists(bin)) {
      LastError() = Cat("s3rver is not installed (scripts/fetch_s3rver.sh): ", bin);
      return false;
    }
    dir_ = Cat(std::filesystem::temp_directory_path().string(), "/barge-s3rver-", ::getpid());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    // s3rver's continuation tokens use a cipher OpenSSL 3 keeps in its legacy provider: without
    // it (Node 17 and later) every listing of more than 1,000 keys fails.
    if (!process_.Start({"node", "--openssl-legacy-provider", bin, "-d", dir_, "-a", "127.0.0.1",
                         "-p", "0", "--configure-bucket", kBucket},
                        dir_ + ".log")) {
      LastError() = Cat("s3rver did not start; see ", dir_, ".log");
      return false;
    }
    return true;
  }
  void Stop() {
    process_.Stop();
    std::filesystem::remove_all(dir_);
    std::filesystem::remove(dir_ + ".log");
  }

  ListeningProcess process_;
  std::string dir_;
};

// A test that needs the shared server: fails where BARGE_REQUIRE_S3 is set (scripts/test.sh)
// and it cannot start, skips elsewhere.
class S3rverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = S3rver::Shared();
    if (server_ == nullptr) {
      if (std::getenv("BARGE_REQUIRE_S3") != nullptr) FAIL() << S3rver::Why();
      GTEST_SKIP() << S3rver::Why();
    }
    server_->ExportEnvironment();
  }
  S3rver* server_ = nullptr;
};

}  // namespace barge

// A fleet whose workers cannot see the submitter's disk: PostgreSQL state (UsePostgres), the
// test s3rver as the data root, and each worker in a mount namespace of its own in which proj/
// (the submitter's pipeline directory, under dir()) is an empty tmpfs. `Base` is E2eTest or a
// fixture derived from it; a derived SetUp calls this one first and returns if it skipped or
// failed.
#pragma once

#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "common/strings.h"
#include "harness.h"
#include "netns_lab.h"
#include "objstore/object_store.h"
#include "testing/s3rver.h"

namespace barge::testing {

template <class Base>
class HiddenFleet : public Base {
 protected:
  void SetUp() override {
    Base::SetUp();
    if (!this->UsePostgres()) GTEST_SKIP() << "no BARGE_TEST_POSTGRES server";
    ::unsetenv("BARGE_SHARED_ROOT");  // the workers here cannot see this machine's files
    server_ = S3rver::Shared();
    if (server_ == nullptr) {
      if (std::getenv("BARGE_REQUIRE_S3") != nullptr) FAIL() << S3rver::Why();
      GTEST_SKIP() << S3rver::Why();
    }
    server_->ExportEnvironment();
    proj_ = (this->dir() / "proj").string();
    std::string why;
    hide_ = HidingPrefix(proj_, &why);
    if (hide_.empty()) {
      if (::geteuid() == 0) FAIL() << why;
      GTEST_SKIP() << why << ": workers would see the submitter's files";
    }
  }
  void TearDown() override {
    for (pid_t w : workers_) {
      ::kill(w, SIGKILL);
      this->Wait(w);
    }
    Base::TearDown();
  }
  // A fleet worker that sees no file of proj/, with a scratch directory of its own under dir()
  // and `env` set.
  pid_t StartHiddenWorker(const std::vector<std::string>& env = {}) {
    std::string scratch = (this->dir() / Cat("w", workers_.size())).string();
    std::vector<std::string> prefix = hide_;
    if (!env.empty()) {
      prefix.push_back("env");
      prefix.insert(prefix.end(), env.begin(), env.end());
    }
    pid_t pid =
        this->StartBarge({"worker", "--cpu", "2", "--lease", "3s", "--scratch", scratch}, prefix);
    workers_.push_back(pid);
    return pid;
  }
  std::string RootUrl() const { return server_->Url(this->dir().filename().string()); }
  // The keys under `under` of the root.
  std::vector<std::string> Keys(const std::string& under) {
    std::vector<std::string> out;
    auto listed = OpenObjectStore(RootUrl()).value()->List(under);
    EXPECT_TRUE(listed.ok()) << listed.status();
    if (listed.ok()) {
      for (const ObjectInfo& o : *listed) out.push_back(o.key);
    }
    return out;
  }

  S3rver* server_ = nullptr;
  std::string proj_;
  std::vector<std::string> hide_;
  std::vector<pid_t> workers_;
};

}  // namespace barge::testing

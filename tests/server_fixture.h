// For tests of `barge serve` over HTTP: the server started in dir() on a free port of
// loopback, with BARGE_TOKEN set to the fixture's token, an HTTP client to it, and the server
// stopped when the test ends.
#pragma once

#include <httplib.h>

#include <memory>
#include <string>
#include <vector>

#include "harness.h"
#include "testing/s3rver.h"

namespace barge::testing {

class ServerTest : public TokenTest {
 protected:
  using TokenTest::TokenTest;
  void TearDown() override {
    server_.Stop();
    TokenTest::TearDown();
  }
  // Starts `barge serve` with `extra` arguments, logging to dir()/serve.log.
  void StartServer(const std::vector<std::string>& extra) {
    ASSERT_TRUE(server_.Start(ServeCommand(dir(), extra), (dir() / "serve.log").string()))
        << Read((dir() / "serve.log").string());
    client_ = std::make_unique<httplib::Client>("127.0.0.1", server_.port());
  }

  ListeningProcess server_;
  std::unique_ptr<httplib::Client> client_;
};

}  // namespace barge::testing

#include "server/connection_guard.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

#include "common/strings.h"

namespace barge {
namespace {

// A listening socket on loopback, a client connected to it, and the accepted end (which is
// what the guard looks at: its local port is the listener's).
class GuardTest : public ::testing::Test {
 protected:
  void SetUp() override {
    listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::bind(listener_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    ASSERT_EQ(::listen(listener_, 4), 0);
    socklen_t len = sizeof(addr);
    ::getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    client_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_EQ(::connect(client_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    server_ = ::accept(listener_, nullptr, nullptr);
    ASSERT_GE(server_, 0);
    sockaddr_in mine{};
    len = sizeof(mine);
    ::getsockname(client_, reinterpret_cast<sockaddr*>(&mine), &len);
    client_port_ = ntohs(mine.sin_port);
  }
  void TearDown() override {
    for (int fd : {client_, server_, listener_}) ::close(fd);
  }
  // Whether the server end has been shut down, as the client sees it.
  bool ClientSeesEnd() {
    char c;
    return ::recv(client_, &c, 1, MSG_DONTWAIT) == 0;
  }

  int listener_ = -1, client_ = -1, server_ = -1;
  int port_ = 0, client_port_ = 0;
};

TEST_F(GuardTest, AConnectionWithoutARequestHeadIsShutDownAfterTheTimeout) {
  ConnectionGuard guard({.head_timeout_ms = 10'000, .max_head_bytes = 1 << 20});
  ConnectionGuard::SweepResult first = guard.Sweep(port_, 1'000);
  EXPECT_EQ(first.open, 1) << "the accepted end only (the listener has no peer)";
  EXPECT_EQ(first.closed, 0);
  EXPECT_EQ(guard.Sweep(port_, 11'000).closed, 0) << "exactly at the limit";
  EXPECT_FALSE(ClientSeesEnd());
  EXPECT_EQ(guard.Sweep(port_, 11'001).closed, 1);
  EXPECT_TRUE(ClientSeesEnd());
  EXPECT_EQ(guard.Sweep(port_, 20'000).closed, 0) << "once";
}

TEST_F(GuardTest, ARequestBeingHandledIsNeverTouchedAndTheClockRestartsAfterItsResponse) {
  ConnectionGuard guard({.head_timeout_ms = 10'000, .max_head_bytes = 1 << 20});
  guard.Sweep(port_, 0);
  guard.RequestStarted("127.0.0.1", client_port_, 5'000);
  guard.HandlerStarted("127.0.0.1", client_port_);
  EXPECT_EQ(guard.Sweep(port_, 600'000).closed, 0) << "a long handler is fine";
  guard.ResponseSent("127.0.0.1", client_port_, 610'000);
  EXPECT_EQ(guard.Sweep(port_, 619'000).closed, 0) << "keep-alive: time for the next head";
  EXPECT_EQ(guard.Sweep(port_, 620'001).closed, 1);
  EXPECT_TRUE(ClientSeesEnd());
}

TEST_F(GuardTest, AHeadLargerThanTheLimitIsShutDownAtOnce) {
  ConnectionGuard guard({.head_timeout_ms = 10'000, .max_head_bytes = 16 << 10});
  guard.Sweep(port_, 0);
  std::string junk(20 << 10, 'x');
  ASSERT_EQ(::send(client_, junk.data(), junk.size(), 0), static_cast<ssize_t>(junk.size()));
  EXPECT_EQ(guard.Sweep(port_, 100).closed, 1);
}

TEST_F(GuardTest, ABodyThatDoesNotArriveWithinItsLimitIsShutDown) {
  ConnectionGuard guard(
      {.head_timeout_ms = 10'000, .max_head_bytes = 1 << 20, .body_timeout_ms = 60'000});
  guard.Sweep(port_, 0);
  guard.RequestStarted("127.0.0.1", client_port_, 1'000);
  EXPECT_EQ(guard.Sweep(port_, 61'000).closed, 0) << "exactly at the limit";
  EXPECT_FALSE(ClientSeesEnd());
  EXPECT_EQ(guard.Sweep(port_, 61'001).closed, 1);
  EXPECT_TRUE(ClientSeesEnd());
}

TEST_F(GuardTest, AHandlerTakesAsLongAsItNeeds) {
  ConnectionGuard guard(
      {.head_timeout_ms = 10'000, .max_head_bytes = 1 << 20, .body_timeout_ms = 60'000});
  guard.Sweep(port_, 0);
  guard.RequestStarted("127.0.0.1", client_port_, 1'000);
  guard.HandlerStarted("127.0.0.1", client_port_);
  EXPECT_EQ(guard.Sweep(port_, 600'000).closed, 0);
  EXPECT_FALSE(ClientSeesEnd());
}

// A request answered within the millisecond the guard first saw its connection: its bytes are
// not counted toward the next head.
TEST_F(GuardTest, AResponseInTheSameMillisecondRestartsTheHeadCount) {
  ConnectionGuard guard({.head_timeout_ms = 10'000, .max_head_bytes = 16 << 10});
  guard.Sweep(port_, 0);
  std::string request(20 << 10, 'x');
  ASSERT_EQ(::send(client_, request.data(), request.size(), 0),
            static_cast<ssize_t>(request.size()));
  guard.RequestStarted("127.0.0.1", client_port_, 0);
  guard.ResponseSent("127.0.0.1", client_port_, 0);
  EXPECT_EQ(guard.Sweep(port_, 50).closed, 0);
  EXPECT_FALSE(ClientSeesEnd());
}

TEST_F(GuardTest, ARefusedConnectionEndsForTheClientAndCarriesNoMoreRequests) {
  ConnectionGuard guard({.head_timeout_ms = 10'000, .max_head_bytes = 1 << 20});
  guard.Sweep(port_, 0);
  EXPECT_FALSE(guard.Refused("127.0.0.1", client_port_));
  guard.EndRefused("127.0.0.1", client_port_, port_);
  EXPECT_FALSE(ClientSeesEnd()) << "not refused: left alone";
  guard.Refuse("127.0.0.1", client_port_);
  EXPECT_TRUE(guard.Refused("127.0.0.1", client_port_));
  ASSERT_EQ(::send(server_, "401", 3, 0), 3);
  guard.EndRefused("127.0.0.1", client_port_, port_);
  char buf[8];
  EXPECT_EQ(::recv(client_, buf, sizeof(buf), MSG_DONTWAIT), 3) << "the refusal arrives";
  EXPECT_TRUE(ClientSeesEnd()) << "then the end of the stream";
  // Once the connection is gone, a new one from the same address and port is not refused.
  ::close(server_);
  server_ = -1;
  guard.Sweep(port_, 100);
  EXPECT_FALSE(guard.Refused("127.0.0.1", client_port_));
}

}  // namespace
}  // namespace barge

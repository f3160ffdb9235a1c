// PostgreSQL errors during an outage: the reason, the SQLSTATE if any, and not the whole SQL.
#include "store/pg_db.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "common/strings.h"
#include "testing/temp_dir.h"

namespace barge {
namespace {

std::string MessageOf(const absl::Status& s) { return ToString(s.message()); }

// A statement of about 2 KB, as the store's largest are.
std::string LongStatement() {
  return Cat("SELECT 1 AS one", std::string(2000, ' '), "-- ", std::string(100, 'z'));
}

bool SkipWithoutServer(std::string& url) {
  const char* env = std::getenv("BARGE_TEST_POSTGRES");
  url = env != nullptr ? env : "";
  return url.empty();
}

TEST(PgDbErrors, ServerErrorCarriesReasonAndSqlstateNotTheStatement) {
  std::string url;
  if (SkipWithoutServer(url)) GTEST_SKIP() << "no BARGE_TEST_POSTGRES server";
  absl::StatusOr<std::unique_ptr<PgDb>> db = PgDb::Open(url);
  ASSERT_TRUE(db.ok()) << db.status();
  absl::Status s = (*db)->Exec(Cat("SELECT * FROM no_such_table", std::string(2000, ' '), "--x"));
  ASSERT_FALSE(s.ok());
  std::string m = MessageOf(s);
  EXPECT_NE(m.find("relation \"no_such_table\" does not exist"), std::string::npos) << m;
  EXPECT_NE(m.find("(SQLSTATE 42P01)"), std::string::npos) << m;
  EXPECT_EQ(m.find("LINE 1"), std::string::npos) << m;
  EXPECT_LT(m.size(), 300u) << m;
}

// The server ends the connection (as a restart or failover does): the reason is libpq's.
TEST(PgDbErrors, TerminatedConnectionCarriesTheReason) {
  std::string url;
  if (SkipWithoutServer(url)) GTEST_SKIP() << "no BARGE_TEST_POSTGRES server";
  absl::StatusOr<std::unique_ptr<PgDb>> victim = PgDb::Open(url);
  absl::StatusOr<std::unique_ptr<PgDb>> killer = PgDb::Open(url);
  ASSERT_TRUE(victim.ok() && killer.ok());
  absl::StatusOr<std::unique_ptr<DbStatement>> pid = (*victim)->Prepare("SELECT pg_backend_pid()");
  ASSERT_TRUE(pid.ok()) << pid.status();
  ASSERT_TRUE(*(*pid)->Step());
  int64_t backend = (*pid)->Int(0);
  pid->reset();
  ASSERT_TRUE((*killer)->Exec(Cat("SELECT pg_terminate_backend(", backend, ")")).ok());
  absl::Status s = (*victim)->Exec(LongStatement());
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  std::string m = MessageOf(s);
  EXPECT_TRUE(m.find("terminating connection") != std::string::npos ||
              m.find("server closed the connection") != std::string::npos)
      << m;
  EXPECT_EQ(m.find("SQLSTATE ?"), std::string::npos) << m;
  EXPECT_LT(m.size(), 400u) << m;
  // Reconnected: the next statement works.
  EXPECT_TRUE((*victim)->Exec("SELECT 1").ok());
}

// Runs scripts/postgres.sh; returns its first line of output, "" if it failed.
std::string PostgresScript(const std::string& args) {
  std::string command = Cat(BARGE_SOURCE_DIR, "/scripts/postgres.sh ", args, " 2>/dev/null");
  FILE* p = ::popen(command.c_str(), "r");
  if (p == nullptr) return "";
  char line[512] = {0};
  bool got = std::fgets(line, sizeof line, p) != nullptr;
  int rc = ::pclose(p);
  return got && rc == 0 ? std::string(Trim(line)) : "";
}

// A server of the test's own, stopped while a connection is open: the error says why, and so does
// every statement after it while the server stays down.
TEST(PgDbErrors, StoppedServerCarriesTheReason) {
  std::string dir = Cat("/tmp/barge-pgstop-", ::getpid());
  std::string url = PostgresScript(Cat("start ", dir));
  if (url.empty()) GTEST_SKIP() << "could not start a PostgreSQL server (scripts/postgres.sh)";
  absl::StatusOr<std::unique_ptr<PgDb>> db = PgDb::Open(url);
  ASSERT_TRUE(db.ok()) << db.status();
  ASSERT_TRUE((*db)->Exec("SELECT 1").ok());
  PostgresScript(Cat("stop ", dir));
  for (int i = 0; i < 2; ++i) {
    absl::Status s = (*db)->Exec(LongStatement());
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
    std::string m = MessageOf(s);
    EXPECT_TRUE(m.find("terminating connection") != std::string::npos ||
                m.find("server closed the connection") != std::string::npos ||
                m.find("no connection to the server") != std::string::npos ||
                m.find("Connection refused") != std::string::npos ||
                m.find("No such file or directory") != std::string::npos)
        << m;
    EXPECT_EQ(m.find("postgres:  "), std::string::npos) << m;
    EXPECT_LT(m.size(), 400u) << m;
  }
}

}  // namespace
}  // namespace barge

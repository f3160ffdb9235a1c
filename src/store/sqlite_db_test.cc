#include "store/sqlite_db.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "common/strings.h"
#include "testing/temp_dir.h"

namespace barge {
namespace {

std::string MessageOf(const absl::Status& s) { return ToString(s.message()); }

TEST(SqliteDb, NotADatabaseNamesTheFile) {
  ScopedTempDir dir("sqlite-db");
  std::string path = (dir.path() / "garbage.db").string();
  std::ofstream(path) << std::string(4096, 'x');
  absl::StatusOr<std::unique_ptr<SqliteDb>> db = SqliteDb::Open(path);
  ASSERT_FALSE(db.ok());
  EXPECT_EQ(db.status().code(), absl::StatusCode::kFailedPrecondition) << db.status();
  EXPECT_NE(MessageOf(db.status()).find(path), std::string::npos) << db.status();
  EXPECT_NE(MessageOf(db.status()).find("file is not a database"), std::string::npos)
      << db.status();
}

TEST(SqliteDb, ReadOnlyFileNamesTheFile) {
  ScopedTempDir dir("sqlite-db");
  std::string path = (dir.path() / "state.db").string();
  ASSERT_TRUE(SqliteDb::Open(path).ok());
  ASSERT_EQ(::chmod(path.c_str(), 0444), 0);
  absl::StatusOr<std::unique_ptr<SqliteDb>> db = SqliteDb::Open(path);
  ASSERT_FALSE(db.ok());
  EXPECT_EQ(db.status().code(), absl::StatusCode::kFailedPrecondition) << db.status();
  EXPECT_NE(MessageOf(db.status()).find(path), std::string::npos) << db.status();
  EXPECT_NE(MessageOf(db.status()).find("read-only"), std::string::npos) << db.status();
}

TEST(SqliteDb, DirectoryNamesTheFile) {
  ScopedTempDir dir("sqlite-db");
  std::string path = (dir.path() / "adir").string();
  std::filesystem::create_directories(path);
  absl::StatusOr<std::unique_ptr<SqliteDb>> db = SqliteDb::Open(path);
  ASSERT_FALSE(db.ok());
  EXPECT_EQ(db.status().code(), absl::StatusCode::kFailedPrecondition) << db.status();
  EXPECT_NE(MessageOf(db.status()).find(path), std::string::npos) << db.status();
}

// Errors after opening name the file too, and only the start of the statement.
TEST(SqliteDb, StatementErrorsNameTheFileAndAShortStatement) {
  ScopedTempDir dir("sqlite-db");
  std::string path = (dir.path() / "state.db").string();
  absl::StatusOr<std::unique_ptr<SqliteDb>> db = SqliteDb::Open(path);
  ASSERT_TRUE(db.ok()) << db.status();
  ASSERT_TRUE((*db)->Exec("CREATE TABLE t (x INTEGER)").ok());
  ASSERT_TRUE((*db)->Exec("PRAGMA query_only = 1").ok());  // writes now fail SQLITE_READONLY
  std::string padding(2000, ' ');
  std::string insert = Cat("INSERT INTO t (x) VALUES (1)", padding, "-- ", std::string(2000, 'y'));
  absl::Status s = (*db)->Exec(insert);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(MessageOf(s).find(path), std::string::npos) << s;
  EXPECT_NE(MessageOf(s).find("readonly"), std::string::npos) << s;
  EXPECT_LT(MessageOf(s).size(), 400u) << s;
  absl::StatusOr<std::unique_ptr<DbStatement>> stmt = (*db)->Prepare(insert);
  ASSERT_TRUE(stmt.ok()) << stmt.status();
  absl::StatusOr<bool> step = (*stmt)->Step();
  ASSERT_FALSE(step.ok());
  EXPECT_NE(MessageOf(step.status()).find(path), std::string::npos) << step.status();
  EXPECT_LT(MessageOf(step.status()).size(), 400u) << step.status();
}

}  // namespace
}  // namespace barge

#include "sql/sql_engine.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <future>

#include "common/strings.h"
#include "testing/temp_dir.h"

namespace barge {
namespace {

TEST(DuckDb, QueriesAndReturnsText) {
  auto db = OpenDuckDb({.threads = 1});
  ASSERT_TRUE(db.ok()) << db.status();
  auto r = (*db)->Query("SELECT 42 AS answer, NULL AS nothing, 'x''y' AS s");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->columns, (std::vector<std::string>{"answer", "nothing", "s"}));
  ASSERT_EQ(r->rows.size(), 1u);
  EXPECT_EQ(r->rows[0][0], "42");
  EXPECT_EQ(r->rows[0][1], std::nullopt);
  EXPECT_EQ(r->rows[0][2], "x'y");
}

TEST(DuckDb, ClassifiesErrors) {
  auto db = OpenDuckDb({}).value();
  auto syntax = db->Query("SELEC 1");
  EXPECT_TRUE(absl::IsInvalidArgument(syntax.status())) << syntax.status();
  EXPECT_NE(syntax.status().message().find("syntax error"), std::string::npos);
  auto missing = db->Query("SELECT * FROM read_parquet('/nonexistent/x.parquet')");
  EXPECT_TRUE(absl::IsDataLoss(missing.status())) << missing.status();
  EXPECT_NE(missing.status().message().find("/nonexistent/x.parquet"), std::string::npos);
}

TEST(DuckDb, ChecksQueriesWithoutBinding) {
  auto db = OpenDuckDb({}).value();
  for (const char* q :
       {"SELECT * FROM table_that_does_not_exist", "FROM t SELECT a", "VALUES (1), (2)",
        "WITH a AS (SELECT 1 AS x) SELECT * FROM a", "TABLE t", "(SELECT 1) UNION ALL (SELECT 2)",
        "PIVOT t ON k IN ('a', 'b') USING sum(v)", "UNPIVOT t ON a, b INTO NAME k VALUE v",
        "SELECT 1;", "SELECT 1 ;\n  ", "SELECT 1 -- a trailing comment",
        "/* why */ SELECT 1 /* and */"}) {
    EXPECT_TRUE(db->CheckQuery(q).ok()) << q << ": " << db->CheckQuery(q);
  }
  absl::Status syntax = db->CheckQuery("SELECT FROM WHERE");
  EXPECT_TRUE(absl::IsInvalidArgument(syntax));
  EXPECT_NE(syntax.message().find("syntax error"), std::string::npos) << syntax;
  absl::Status two = db->CheckQuery("SELECT 1; SELECT 2");
  EXPECT_NE(two.message().find("expected one SQL query, found 2 statements"), std::string::npos)
      << two;
  // Text that closes barge's parentheses itself is not one query.
  EXPECT_FALSE(db->CheckQuery("SELECT 1) TO '/tmp/x.csv'; ATTACH 'y.db'; COPY (SELECT 1").ok());
  EXPECT_FALSE(db->CheckQuery("SELECT 1) UNION (SELECT 2").ok());
}

TEST(DuckDb, RefusesEveryStatementThatIsNotAQueryByName) {
  auto db = OpenDuckDb({}).value();
  for (const char* q : {"COPY t TO 'out.csv'",
                        "EXPORT DATABASE 'dump'",
                        "IMPORT DATABASE 'dump'",
                        "ATTACH 'other.db' AS o",
                        "DETACH o",
                        "INSTALL httpfs",
                        "FORCE INSTALL httpfs",
                        "LOAD httpfs",
                        "SET threads = 1",
                        "RESET threads",
                        "SET VARIABLE v = 1",
                        "PRAGMA version",
                        "CALL pragma_version()",
                        "CREATE SECRET (TYPE s3, KEY_ID 'k')",
                        "CREATE TABLE t AS SELECT 1",
                        "INSERT INTO t VALUES (1)",
                        "DELETE FROM t",
                        "DROP TABLE t",
                        "DESCRIBE t",
                        "SHOW TABLES",
                        "SUMMARIZE t",
                        "EXPLAIN SELECT 1",
                        "USE memory",
                        "CHECKPOINT",
                        "BEGIN",
                        "VACUUM",
                        "  -- note\n  copy t to 'x'"}) {
    absl::Status s = db->CheckQuery(q);
    EXPECT_TRUE(absl::IsInvalidArgument(s)) << q << ": " << s;
    EXPECT_NE(s.message().find(" statement: a SQL step runs one read-only query"),
              std::string::npos)
        << q << ": " << s;
  }
  EXPECT_NE(db->CheckQuery("  -- note\n  copy t to 'x'").message().find("COPY statement:"),
            std::string::npos);
  EXPECT_FALSE(std::filesystem::exists("dump"));
}

// DuckDB's parser runs IMPORT DATABASE itself (it reads <dir>/schema.sql), so checking a query
// must never hand such text to the parser, however it is hidden: here schema.sql is a FIFO, which
// a read would block on.
TEST(DuckDb, CheckingAQueryNeverReadsAnImportedDirectory) {
  auto db = OpenDuckDb({}).value();
  ScopedTempDir temp("import");
  std::string dir = temp.path().string();
  ASSERT_EQ(::mkfifo((temp.path() / "schema.sql").c_str(), 0600), 0);
  for (const std::string& q :
       {Cat("SELECT 1) TO 'x'; IMPORT DATABASE '", dir, "'; COPY (SELECT 1"),
        Cat("SELECT 1; import /* hidden */ database '", dir, "'"),
        Cat("SELECT 1; IMPORT -- line\n DATABASE '", dir, "'"), Cat("IMPORT DATABASE '", dir, "'"),
        // Forms the words do not show: the parser's own session stops them.
        Cat("SELECT 1; PRAGMA import_database('", dir, "')"),
        Cat("SELECT 1) TO 'x'; pragma IMPORT_DATABASE ( '", dir, "' ); COPY (SELECT 1"),
        Cat("SELECT 1; IMPORT --x\rDATABASE '", dir, "'"),
        Cat("SELECT 1; IMPORT /* a /* b */ c */ DATABASE '", dir, "'")}) {
    auto checked = std::async(std::launch::async, [&] { return db->CheckQuery(q); });
    if (checked.wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
      // Let the blocked reader go (a writer that closes at once) before failing.
      int fd = ::open((temp.path() / "schema.sql").c_str(), O_WRONLY | O_NONBLOCK);
      if (fd >= 0) ::close(fd);
      ADD_FAILURE() << "checking the query read the imported directory: " << q;
      checked.wait();
      continue;
    }
    absl::Status s = checked.get();
    EXPECT_TRUE(absl::IsInvalidArgument(s)) << q << ": " << s;
    // Refused by name, as a syntax error, or by the parser's session, which may not open files:
    // what matters is that it returned without reading.
  }
  // Other words that merely resemble it are queries like any other.
  EXPECT_TRUE(db->CheckQuery("SELECT 1 AS important, 2 AS database_size").ok());
}

TEST(DuckDb, NoStatementChangesASettingOrFetchesAnExtension) {
  auto db = OpenDuckDb({.threads = 1}).value();
  auto settings = db->Query(
      "SELECT name, value FROM duckdb_settings() WHERE name IN ('autoinstall_known_extensions', "
      "'autoload_known_extensions', 'allow_community_extensions', 'lock_configuration') "
      "ORDER BY name");
  ASSERT_TRUE(settings.ok()) << settings.status();
  ASSERT_EQ(settings->rows.size(), 4u);
  EXPECT_EQ(settings->rows[0][1], "false");  // allow_community_extensions
  EXPECT_EQ(settings->rows[1][1], "false");  // autoinstall_known_extensions
  EXPECT_EQ(settings->rows[2][1], "false");  // autoload_known_extensions
  EXPECT_EQ(settings->rows[3][1], "true");   // lock_configuration
  auto set = db->Query("SET autoinstall_known_extensions = true");
  EXPECT_FALSE(set.ok());
  EXPECT_NE(set.status().message().find("locked"), std::string::npos) << set.status();
  // An https path needs httpfs, which is not loaded behind the query's back.
  auto remote = db->Query("SELECT * FROM 'https://example.invalid/x.csv'");
  EXPECT_FALSE(remote.ok());
  EXPECT_NE(remote.status().message().find("httpfs"), std::string::npos) << remote.status();
  // The writers and readers steps use are built in: nothing needs loading.
  std::string dir = ::testing::TempDir();
  for (const char* format : {"parquet", "csv", "json"}) {
    std::string path = SqlQuote(Cat(dir, "/duckdb_builtin.", format));
    auto wrote = db->Query(Cat("COPY (SELECT 7 AS x) TO ", path, " (FORMAT ", format, ")"));
    ASSERT_TRUE(wrote.ok()) << format << ": " << wrote.status();
    auto read = db->Query(Cat("SELECT x FROM ", path));
    ASSERT_TRUE(read.ok()) << format << ": " << read.status();
    EXPECT_EQ(read->rows[0][0], "7") << format;
  }
}

TEST(DuckDb, QuotesLiterals) { EXPECT_EQ(SqlQuote("O'Brien's"), "'O''Brien''s'"); }

}  // namespace
}  // namespace barge

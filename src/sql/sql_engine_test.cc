#include "sql/sql_engine.h"

#include <gtest/gtest.h>

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

TEST(DuckDb, ChecksSyntaxWithoutBinding) {
  auto db = OpenDuckDb({}).value();
  EXPECT_TRUE(db->CheckSyntax("SELECT * FROM table_that_does_not_exist").ok());
  EXPECT_TRUE(absl::IsInvalidArgument(db->CheckSyntax("SELECT FROM WHERE")));
  EXPECT_TRUE(absl::IsInvalidArgument(db->CheckSyntax("SELECT 1; SELECT 2")));
}

TEST(DuckDb, QuotesLiterals) { EXPECT_EQ(SqlQuote("O'Brien's"), "'O''Brien''s'"); }

}  // namespace
}  // namespace barge

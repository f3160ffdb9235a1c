// SQL steps end to end: the shuffle's result against one DuckDB query over the same data, joins
// of named inputs, output formats, and how SQL errors and corrupt inputs fail.
#include <filesystem>

#include "common/strings.h"
#include "harness.h"
#include "sql/sql_engine.h"

namespace barge::testing {
namespace {

class SqlTest : public E2eTest {
 protected:
  // Every output path of a step's tasks, as a SQL list literal.
  std::string OutputList(const std::string& run, const std::string& step) {
    std::vector<std::string> paths;
    for (const auto& t : Json({"tasks", run, "--step", step, "--json"})) {
      for (const auto& o : t["outputs"]) paths.push_back(SqlQuote(o["path"].get<std::string>()));
    }
    return Cat("[", Join(paths, ", "), "]");
  }
  std::vector<std::vector<std::optional<std::string>>> Rows(const std::string& sql) {
    auto db = OpenDuckDb({.threads = 2}).value();
    absl::StatusOr<SqlResult> r = db->Query(sql);
    EXPECT_TRUE(r.ok()) << r.status() << "\n" << sql;
    return r.ok() ? r->rows : std::vector<std::vector<std::optional<std::string>>>{};
  }
};

struct ShuffleCase {
  std::string name;
  int buckets;
  int skew;  // percent of events on one hot key
};

// What ctest shows beside the test name (else GoogleTest prints the struct's bytes).
[[maybe_unused]] void PrintTo(const ShuffleCase& c, std::ostream* os) { *os << c.name; }

class ShuffleTest : public SqlTest, public ::testing::WithParamInterface<ShuffleCase> {};

TEST_P(ShuffleTest, EqualsOneQueryOverTheSameData) {
  const ShuffleCase& c = GetParam();
  Result r = Barge({"run", Cat(BARGE_SOURCE_DIR, "/examples/events/pipeline.yaml"), "-p", "files=4",
                    "-p", "rows_per_file=5000", "-p", "users=300", "-p", Cat("buckets=", c.buckets),
                    "-p", Cat("skew=", c.skew)});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string id = RunIdFrom(r);
  nlohmann::json aggregate = Json({"tasks", id, "--step", "aggregate", "--json"});
  ASSERT_EQ(aggregate.size(), static_cast<size_t>(c.buckets));

  std::string raw = OutputList(id, "generate");
  auto expected =
      Rows(Cat("SELECT user_id, sum(amount::DECIMAL(12, 2)) AS total, count(*) AS events, "
               "count(DISTINCT lower(trim(category))) AS categories FROM read_csv(",
               raw, ") WHERE amount > 0 GROUP BY user_id ORDER BY user_id"));
  auto actual = Rows(Cat("SELECT user_id, total, events, categories FROM read_parquet(",
                         OutputList(id, "aggregate"), ") ORDER BY user_id"));
  ASSERT_GT(expected.size(), 100u);
  EXPECT_EQ(actual, expected);
  // Each user's rows went to exactly one bucket.
  auto dupes = Rows(Cat("SELECT count(*) - count(DISTINCT user_id) FROM read_parquet(",
                        OutputList(id, "aggregate"), ")"));
  EXPECT_EQ(dupes[0][0], "0");
  if (c.skew > 0) {
    auto hot = Rows(Cat("SELECT events FROM read_parquet(", OutputList(id, "aggregate"),
                        ") WHERE user_id = 0"));
    ASSERT_EQ(hot.size(), 1u);
    EXPECT_GT(std::stoll(*hot[0][0]), 20000 * c.skew / 100 / 3);
  }
}

INSTANTIATE_TEST_SUITE_P(Buckets, ShuffleTest,
                         ::testing::Values(ShuffleCase{"One", 1, 0}, ShuffleCase{"Seven", 7, 0},
                                           ShuffleCase{"SixtyFour", 64, 0},
                                           ShuffleCase{"SkewedSeven", 7, 60}),
                         [](const auto& info) { return info.param.name; });

TEST_F(SqlTest, MoreBucketsThanKeysGiveEmptyBucketsTheirSchema) {
  std::string p = Write("few.yaml", R"(
name: few
steps:
  - name: keys
    partition: {by: k, buckets: 16}
    sql: SELECT i % 3 AS k, i AS v FROM range(30) t(i)
  - name: sums
    foreach: buckets(keys)
    sql: SELECT k, sum(v)::BIGINT AS s FROM input GROUP BY k
)");
  Result r = Barge({"run", p});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string id = RunIdFrom(r);
  EXPECT_EQ(Json({"tasks", id, "--step", "sums", "--json"}).size(), 16u);
  auto rows = Rows(Cat("SELECT k, s FROM read_parquet(", OutputList(id, "sums"), ") ORDER BY k"));
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0][1], "135");  // 0+3+...+27
  EXPECT_EQ(rows[2][1], "155");
}

TEST_F(SqlTest, JoinsTwoNamedInputs) {
  Write("raw/users.csv", "id,name\n1,ada\n2,grace\n3,linus\n");
  Write("raw/orders.csv", "user_id,amount\n1,10\n1,5\n3,7\n9,100\n");
  std::string p = Write("join.yaml", R"(
name: join
steps:
  - name: users
    sql: SELECT id, upper(name) AS name FROM input
    inputs: {input_users: files("raw/users.csv")}
  - name: joined
    inputs: {u: outputs(users), o: files("raw/orders.csv")}
    output: {format: csv}
    sql: SELECT u.name, sum(o.amount) AS total FROM u JOIN o ON o.user_id = u.id GROUP BY u.name ORDER BY u.name
)");
  // `input` is not declared for the first step: its only view is input_users.
  Result bad = Barge({"run", p});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("Table with name input does not exist"), std::string::npos) << bad.err;

  p = Write("join.yaml", ReplaceAll(Read(p), "FROM input\n", "FROM input_users\n"));
  Result r = Barge({"run", p});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  nlohmann::json joined = Json({"tasks", RunIdFrom(r), "--step", "joined", "--json"});
  EXPECT_EQ(Read(joined[0]["outputs"][0]["path"]), "name,total\nADA,15\nLINUS,7\n");
}

TEST_F(SqlTest, EachOutputFormatReadsBack) {
  std::string p = Write("formats.yaml", R"(
name: formats
steps:
  - name: parquet_snappy
    output: {format: parquet, compression: snappy}
    sql: SELECT 1 AS a, 'x' AS b UNION ALL SELECT 2, 'y'
  - name: parquet_none
    output: {format: parquet, compression: none}
    sql: SELECT 1 AS a, 'x' AS b UNION ALL SELECT 2, 'y'
  - name: csv
    output: {format: csv}
    sql: SELECT 1 AS a, 'x' AS b UNION ALL SELECT 2, 'y'
  - name: json
    output: {format: json}
    sql: SELECT 1 AS a, 'x' AS b UNION ALL SELECT 2, 'y'
  - name: readback
    needs: [parquet_snappy, parquet_none, csv, json]
    output: {format: csv}
    sql: SELECT a, b, count(*) AS copies FROM input GROUP BY a, b ORDER BY a
)");
  Result r = Barge({"run", p});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string id = RunIdFrom(r);
  nlohmann::json json_task = Json({"tasks", id, "--step", "json", "--json"});
  EXPECT_EQ(Read(json_task[0]["outputs"][0]["path"]),
            "{\"a\":1,\"b\":\"x\"}\n{\"a\":2,\"b\":\"y\"}\n");
  nlohmann::json csv_task = Json({"tasks", id, "--step", "csv", "--json"});
  EXPECT_EQ(Read(csv_task[0]["outputs"][0]["path"]), "a,b\n1,x\n2,y\n");
  auto codec = Rows(Cat("SELECT DISTINCT compression FROM parquet_metadata(",
                        OutputList(id, "parquet_snappy"), ")"));
  EXPECT_EQ(codec[0][0], "SNAPPY");
  // The final step read all four formats back through one `input` view.
  nlohmann::json readback = Json({"tasks", id, "--step", "readback", "--json"});
  EXPECT_EQ(Read(readback[0]["outputs"][0]["path"]), "a,b,copies\n1,x,4\n2,y,4\n");
}

TEST_F(SqlTest, SyntaxErrorsAreCaughtByValidate) {
  std::string p = Write("syntax.yaml", "name: s\nsteps:\n  - name: q\n    sql: SELEC 1 FROM x\n");
  for (std::string cmd : {"validate", "run"}) {
    Result r = Barge({cmd, p});
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_NE(r.err.find(Cat(p,
                             ":4:10: step \"q\": sql: Parser Error: syntax error at or near "
                             "\"SELEC\"")),
              std::string::npos)
        << r.err;
  }
  EXPECT_EQ(Json({"runs", "--json"}).size(), 0u);
}

// Statements that can never run in a SQL step (barge runs the query as COPY (query) TO ...)
// are refused by validate and run with their position, before any run exists.
TEST_F(SqlTest, StatementsThatAreNotAReadOnlyQueryAreRefusedByValidate) {
  std::string dump = (dir() / "dump").string();
  for (std::string stmt :
       {Cat("COPY (SELECT 1) TO ", SqlQuote((dir() / "x.csv").string())),
        Cat("EXPORT DATABASE ", SqlQuote(dump)), Cat("IMPORT DATABASE ", SqlQuote(dump)),
        std::string("ATTACH 'other.db' AS o"), std::string("DETACH o"),
        std::string("INSTALL httpfs"), std::string("LOAD httpfs"), std::string("SET threads = 1"),
        std::string("RESET threads"), std::string("PRAGMA version"),
        std::string("CALL pragma_version()"),
        std::string("CREATE SECRET (TYPE s3, KEY_ID 'k', SECRET 's')")}) {
    std::string p =
        Write("stmt.yaml", Cat("name: s\nsteps:\n  - name: q\n    sql: \"", stmt, "\"\n"));
    std::string keyword = stmt.substr(0, stmt.find(' '));
    for (std::string cmd : {"validate", "run"}) {
      Result r = Barge({cmd, p});
      EXPECT_EQ(r.exit_code, 2) << cmd << " " << stmt << ": " << r.err;
      EXPECT_NE(r.err.find(Cat(p, ":4:10: step \"q\": sql: ", keyword,
                               " statement: a SQL step runs one read-only query")),
                std::string::npos)
          << r.err;
    }
  }
  EXPECT_FALSE(std::filesystem::exists(dump));
  EXPECT_FALSE(std::filesystem::exists(dir() / "x.csv"));
  EXPECT_EQ(Json({"runs", "--json"}).size(), 0u);
}

// Validate checks the query as the first task renders it; a later task whose {item} makes it
// something else fails on its own check, before DuckDB binds it (binding EXPORT DATABASE
// would create its directory).
TEST_F(SqlTest, EachTaskChecksItsOwnRenderingOfTheQuery) {
  std::string dump = (dir() / "dump").string();
  std::string p = Write("items.yaml", Cat(R"(
name: items
steps:
  - name: q
    foreach: ["SELECT 1 AS x", "EXPORT DATABASE ')",
                                          dump, R"('"]
    sql: "{item}"
    output: {format: csv}
)"));
  Result r = Barge({"run", p});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  nlohmann::json tasks = Json({"tasks", RunIdFrom(r), "--json"});
  ASSERT_EQ(tasks.size(), 2u);
  EXPECT_EQ(tasks[0]["state"], "succeeded");
  EXPECT_EQ(Read(tasks[0]["outputs"][0]["path"]), "x\n1\n");
  EXPECT_EQ(tasks[1]["state"], "failed");
  std::string error = tasks[1]["error"];
  EXPECT_NE(error.find("step q, task 1: sql: EXPORT statement: a SQL step runs one read-only "
                       "query"),
            std::string::npos)
      << error;
  EXPECT_FALSE(std::filesystem::exists(dump));
}

// A trailing ';' or `-- comment` passes validate and so must run.
TEST_F(SqlTest, ATrailingSemicolonOrCommentRuns) {
  std::string p = Write("tail.yaml", R"(
name: tail
steps:
  - name: semi
    output: {format: csv}
    sql: "SELECT 1 AS x;  "
  - name: comment
    output: {format: csv}
    sql: SELECT 2 AS x -- the answer
)");
  Result r = Barge({"run", p});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string id = RunIdFrom(r);
  EXPECT_EQ(Read(Json({"tasks", id, "--step", "semi", "--json"})[0]["outputs"][0]["path"]),
            "x\n1\n");
  EXPECT_EQ(Read(Json({"tasks", id, "--step", "comment", "--json"})[0]["outputs"][0]["path"]),
            "x\n2\n");
}

TEST_F(SqlTest, AQueryErrorIsAnApplicationFailureWithItsLocation) {
  std::string p = Write("bind.yaml", R"(
name: bind
steps:
  - name: q
    retries: 1
    retry_delay: 10ms
    sql: SELECT no_such_column FROM range(3)
)");
  Result r = Barge({"run", p});
  EXPECT_EQ(r.exit_code, 1);
  nlohmann::json t = Json({"tasks", RunIdFrom(r), "--json"})[0];
  EXPECT_EQ(t["state"], "failed");
  EXPECT_EQ(t["attempts"], 2);  // an application failure uses its retries, then stops
  std::string error = t["error"];
  EXPECT_NE(error.find("step q, task 0: Binder Error: Referenced column \"no_such_column\" not "
                       "found"),
            std::string::npos)
      << error;
  EXPECT_NE(error.find("LINE 1: SELECT no_such_column FROM range(3)"), std::string::npos) << error;
}

TEST_F(SqlTest, ACorruptInputIsABadInputFailureNamingTheFileAndIsNotRetried) {
  std::string corrupt = Write("raw/broken.parquet", "this is not a parquet file at all");
  std::string p = Write("corrupt.yaml", R"(
name: corrupt
steps:
  - name: read
    foreach: files("raw/*.parquet")
    retries: 3
    sql: SELECT count(*) FROM input
)");
  Result r = Barge({"run", p});
  EXPECT_EQ(r.exit_code, 1);
  std::string id = RunIdFrom(r);
  nlohmann::json t = Json({"tasks", id, "--json"})[0];
  EXPECT_EQ(t["state"], "failed");
  EXPECT_EQ(t["attempts"], 1);
  EXPECT_EQ(t["exit_code"], 65);
  std::string error = t["error"];
  EXPECT_NE(error.find("step read, task 0: reading input input: "), std::string::npos) << error;
  EXPECT_NE(error.find(corrupt), std::string::npos) << error;
}

// A 0-byte text file has no header to take columns from. Beside other files it adds no rows (as
// DuckDB's own union_by_name reads it); alone in a task it is bad input, named, and not retried.
TEST_F(SqlTest, AnEmptyCsvAddsNoRowsOrFailsAsBadInputNamingIt) {
  Write("raw/a.csv", "user_id,amount\n1,10\n2,20\n");
  std::string empty = Write("raw/b.csv", "");
  Write("raw/c.csv", "user_id,amount\n1,5\n");
  std::string p = Write("empty.yaml", R"(
name: empty
steps:
  - name: all
    inputs: {raw: files("raw/*.csv")}
    output: {format: csv}
    sql: SELECT count(*) AS n, sum(amount) AS total FROM raw
  - name: each
    foreach: files("raw/*.csv")
    retries: 3
    sql: SELECT user_id, sum(amount) AS total FROM input GROUP BY user_id
)");
  Result r = Barge({"run", p});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  std::string id = RunIdFrom(r);
  nlohmann::json all = Json({"tasks", id, "--json", "--step", "all"})[0];
  EXPECT_EQ(all["state"], "succeeded") << all.dump();
  EXPECT_EQ(Read(all["outputs"][0]["path"]), "n,total\n3,35\n");
  for (const nlohmann::json& t : Json({"tasks", id, "--json", "--step", "each"})) {
    if (t["index"] != 1) {
      EXPECT_EQ(t["state"], "succeeded") << t.dump();
      continue;
    }
    EXPECT_EQ(t["state"], "failed") << t.dump();
    EXPECT_EQ(t["attempts"], 1) << t.dump();
    EXPECT_EQ(t["exit_code"], 65) << t.dump();
    std::string error = t["error"];
    EXPECT_NE(error.find(Cat(empty, " is empty")), std::string::npos) << error;
  }
}

}  // namespace
}  // namespace barge::testing

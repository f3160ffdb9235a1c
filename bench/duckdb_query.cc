// One DuckDB query, timed: the single-node baseline for bench/shuffle.sh.
//   barge_duckdb_query THREADS "SQL"   -> prints the seconds the query took
#include <chrono>
#include <cstdio>
#include <string>

#include "sql/sql_engine.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s THREADS SQL\n", argv[0]);
    return 2;
  }
  auto db = barge::OpenDuckDb({.threads = std::stoi(argv[1])});
  if (!db.ok()) {
    std::fprintf(stderr, "%s\n", std::string(db.status().message()).c_str());
    return 1;
  }
  auto start = std::chrono::steady_clock::now();
  auto result = (*db)->Query(argv[2]);
  std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
  if (!result.ok()) {
    std::fprintf(stderr, "%s\n", std::string(result.status().message()).c_str());
    return 1;
  }
  std::printf("%.3f\n", took.count());
  return 0;
}

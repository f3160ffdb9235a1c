#include "store/store_url.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "common/strings.h"
#include "store/state_store.h"
#include "testing/temp_dir.h"

namespace barge {
namespace {

TEST(ParseStoreUrl, SqliteForms) {
  for (auto [url, path] :
       {std::pair{"state.db", "state.db"}, std::pair{".barge/state.db", ".barge/state.db"},
        std::pair{"/var/lib/barge/state.db", "/var/lib/barge/state.db"},
        std::pair{"sqlite:x.db", "x.db"}, std::pair{"sqlite:///abs/x.db", "/abs/x.db"},
        std::pair{"sqlite://rel/x.db", "rel/x.db"}, std::pair{"./a=b.db", "./a=b.db"},
        std::pair{"sqlite:a=b.db", "a=b.db"}, std::pair{"dir/k=v/state.db", "dir/k=v/state.db"},
        // Paths that look a little like URLs or keyword strings, but are neither.
        std::pair{"backup-2024-05-01T10:00.db", "backup-2024-05-01T10:00.db"},
        std::pair{"dt=2024-05-01/state.db", "dt=2024-05-01/state.db"},
        std::pair{"a=b.db", "a=b.db"}, std::pair{"SQLITE://x.db", "x.db"},
        std::pair{"Sqlite:y.db", "y.db"}}) {
    absl::StatusOr<StoreUrl> u = ParseStoreUrl(url);
    ASSERT_TRUE(u.ok()) << url << ": " << u.status();
    EXPECT_EQ(u->kind, StoreUrl::Kind::kSqlite) << url;
    EXPECT_EQ(u->target, path) << url;
  }
}

TEST(ParseStoreUrl, PostgresForms) {
  for (const char* url : {"postgres://u:pw@db:5432/barge", "postgresql://barge@localhost/barge",
                          "postgresql://h/db?sslmode=require&options=-csearch_path%3Dx"}) {
    absl::StatusOr<StoreUrl> u = ParseStoreUrl(url);
    ASSERT_TRUE(u.ok()) << url << ": " << u.status();
    EXPECT_EQ(u->kind, StoreUrl::Kind::kPostgres);
    EXPECT_EQ(u->target, url);
  }
}

TEST(ParseStoreUrl, PasswordAsLibpqReadsIt) {
  EXPECT_EQ(ParseStoreUrl("postgres://u:p%40ss@h/db")->password, "p@ss");
  EXPECT_EQ(ParseStoreUrl("postgres://u@h/db")->password, "");
  EXPECT_EQ(ParseStoreUrl("state.db")->password, "");
}

// Each refused value names its problem and never shows the password.
TEST(ParseStoreUrl, RefusesWhatItCannotParseWithoutShowingThePassword) {
  struct Case {
    const char* url;
    const char* reason;
  };
  for (const Case& c : {
           Case{"host=db user=u password=Sup3rSecret dbname=x", "libpq keyword string"},
           Case{"password=Sup3rSecret", "libpq keyword string"},
           Case{"postgresql:/user:Sup3rSecret@x", "malformed PostgreSQL URL"},
           Case{"postgres:user:Sup3rSecret@x", "malformed PostgreSQL URL"},
           Case{"mysql://user:Sup3rSecret@db/x", "unsupported scheme \"mysql\""},
           Case{"file:state.db", "unsupported scheme \"file\""},
           Case{"://user:Sup3rSecret@x", "not a URL barge knows"},
           Case{"postgresql://user:Sup3rSecret@h/db?nonsense=1", "not a valid PostgreSQL URL"},
           Case{"sqlite:", "no path"},
           Case{"", "empty"},
       }) {
    absl::StatusOr<StoreUrl> u = ParseStoreUrl(c.url);
    ASSERT_FALSE(u.ok()) << c.url;
    EXPECT_EQ(u.status().code(), absl::StatusCode::kInvalidArgument) << c.url;
    std::string m = ToString(u.status().message());
    EXPECT_NE(m.find(c.reason), std::string::npos) << c.url << ": " << m;
    EXPECT_EQ(m.find("Sup3rSecret"), std::string::npos) << m;
  }
}

// Before, each of these created an SQLite file named after (part of) the value.
TEST(OpenStateStore, RefusedValuesCreateNoFile) {
  ScopedTempDir dir("store-url");
  std::filesystem::path cwd = std::filesystem::current_path();
  std::filesystem::current_path(dir.path());
  for (const char* url : {"host=db password=Sup3rSecret", "postgresql:/user:Sup3rSecret@x"}) {
    EXPECT_FALSE(OpenStateStore(url).ok()) << url;
  }
  std::filesystem::current_path(cwd);
  EXPECT_TRUE(std::filesystem::is_empty(dir.path()));
}

TEST(OpenStateStore, ConnectionErrorsDoNotShowThePassword) {
  // An unencoded '/' in the password: libpq takes "u:Sup3r" for host and port and quotes the
  // "port" in its error.
  absl::StatusOr<std::unique_ptr<StateStore>> misread =
      OpenStateStore("postgresql://u:Sup3r/Secret@127.0.0.1:1/db");
  ASSERT_FALSE(misread.ok());
  EXPECT_EQ(ToString(misread.status().message()).find("Sup3r"), std::string::npos)
      << misread.status();

  // Port 1 on loopback: refused at once. libpq's message names the host and port.
  absl::StatusOr<std::unique_ptr<StateStore>> s =
      OpenStateStore("postgresql://u:Sup3rSecret@127.0.0.1:1/db?connect_timeout=2");
  ASSERT_FALSE(s.ok());
  std::string m = ToString(s.status().message());
  EXPECT_EQ(m.find("Sup3rSecret"), std::string::npos) << m;
  EXPECT_NE(m.find("127.0.0.1"), std::string::npos) << m;
}

}  // namespace
}  // namespace barge

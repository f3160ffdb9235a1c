// The state store named on the command line, and the secrets around it: values barge cannot
// parse are refused (exit 2, password masked, no file created); --state names the store on every
// command; SQLite files barge cannot use are named; `barge exec` masks secret values; token files
// of `barge serve` obey the same rules as BARGE_TOKEN.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "common/strings.h"
#include "harness.h"

namespace barge::testing {
namespace {

namespace fs = std::filesystem;

constexpr const char* kPassword = "Sup3rSecretPw";

// Every file under dir() but the harness's own output files.
std::vector<std::string> FilesIn(const fs::path& dir) {
  std::vector<std::string> out;
  for (const fs::directory_entry& e : fs::recursive_directory_iterator(dir)) {
    std::string name = e.path().filename().string();
    if (!name.starts_with(".out") && !name.starts_with(".err") && !name.ends_with(".yaml")) {
      out.push_back(e.path().string());
    }
  }
  return out;
}

TEST_F(E2eTest, UnparseableStoreIsRefusedWithoutPasswordOrFile) {
  std::string p = Write("p.yaml", "name: p\nsteps:\n  - name: a\n    run: echo hi\n");
  struct Case {
    std::string url;
    std::string reason;
  };
  for (const Case& c : {
           Case{Cat("host=db user=u password=", kPassword), "libpq keyword string"},
           Case{Cat("postgresql:/user:", kPassword, "@x"), "malformed PostgreSQL URL"},
           Case{Cat("mysql://user:", kPassword, "@db/x"), "unsupported scheme \"mysql\""},
           Case{Cat("postgres://user:", kPassword, "@db/x?bogus=1"), "not a valid PostgreSQL URL"},
       }) {
    for (const std::vector<std::string>& args :
         {std::vector<std::string>{"run", p, "--state", c.url},
          std::vector<std::string>{"tasks", "last", "--state", c.url},
          std::vector<std::string>{"runs", "--store", c.url}}) {
      Result r = Barge(args);
      EXPECT_EQ(r.exit_code, 2) << c.url << "\n" << r.err;
      EXPECT_NE(r.err.find(c.reason), std::string::npos) << r.err;
      EXPECT_NE(r.err.find("--state"), std::string::npos) << r.err;
      // The hint survives the masking of the message it is part of.
      EXPECT_NE(r.err.find("or postgres://USER@HOST/DB,"), std::string::npos) << r.err;
      EXPECT_EQ(r.err.find("[redacted]@HOST"), std::string::npos) << r.err;
      EXPECT_EQ(r.err.find(kPassword), std::string::npos) << r.err;
      EXPECT_EQ(r.out.find(kPassword), std::string::npos) << r.out;
    }
    // An argument the command line cannot place is echoed masked.
    Result misplaced = Barge({"--state", c.url, "runs"});
    EXPECT_EQ(misplaced.exit_code, 2) << misplaced.err;
    EXPECT_NE(misplaced.err.find("not expected"), std::string::npos) << misplaced.err;
    EXPECT_NE(misplaced.err.find("options go after the command"), std::string::npos)
        << misplaced.err;
    EXPECT_EQ(misplaced.err.find(kPassword), std::string::npos) << misplaced.err;
    // From the environment the message says so.
    ::setenv("BARGE_STATE", c.url.c_str(), 1);
    Result r = Barge({"status", "last"});
    ::unsetenv("BARGE_STATE");
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_NE(r.err.find("BARGE_STATE"), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find(kPassword), std::string::npos) << r.err;
  }
  EXPECT_EQ(FilesIn(dir()), std::vector<std::string>{});
}

TEST_F(E2eTest, UnreachablePostgresErrorHidesThePassword) {
  Result r = Barge({"status", "last", "--state",
                    Cat("postgresql://u:", kPassword, "@127.0.0.1:1/db?connect_timeout=2")});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("connecting to PostgreSQL"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find(kPassword), std::string::npos) << r.err;
}

// Commands that only look at runs never create a store: a mistyped --state leaves nothing behind.
TEST_F(E2eTest, ReadingCommandsCreateNoStore) {
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"status", "last"}, std::vector<std::string>{"tasks", "last"},
        std::vector<std::string>{"logs", "last", "a", "0"},
        std::vector<std::string>{"cancel", "last"}, std::vector<std::string>{"resume", "last"},
        std::vector<std::string>{"exec", "last", "a", "0"}}) {
    std::vector<std::string> with_state = args;
    with_state.insert(with_state.end(), {"--state", "typo.db"});
    Result r = Barge(with_state);
    EXPECT_EQ(r.exit_code, 2) << args[0] << ": " << r.err;
    EXPECT_NE(r.err.find("there are no runs yet"), std::string::npos) << args[0] << ": " << r.err;
  }
  EXPECT_EQ(Json({"runs", "--json", "--state", "typo.db"}), nlohmann::json::array());
  EXPECT_EQ(Json({"workers", "--json", "--state", "typo.db"}), nlohmann::json::array());
  EXPECT_EQ(Json({"schedule", "list", "--json", "--state", "typo.db"}), nlohmann::json::array());
  EXPECT_EQ(FilesIn(dir()), std::vector<std::string>{});
}

TEST_F(E2eTest, TasksFilterIsOnlyAndStateIsTheStore) {
  std::string p = Write("p.yaml",
                        "name: p\nsteps:\n  - name: a\n    foreach: range(3)\n    retries: 0\n"
                        "    run: '[ \"$BARGE_TASK_INDEX\" != 1 ]'\n");
  std::string store = (dir() / "elsewhere/state.db").string();
  Result r = Barge({"run", p, "--state", store});
  ASSERT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("--only failed"), std::string::npos) << r.err;
  nlohmann::json failed = Json({"tasks", "last", "--only", "failed", "--json", "--state", store});
  ASSERT_EQ(failed.size(), 1u) << failed.dump();
  EXPECT_EQ(failed[0]["index"], 1);
  EXPECT_EQ(Json({"tasks", "last", "--only", "succeeded", "--json", "--store", store}).size(), 2u);
  Result bad = Barge({"tasks", "last", "--only", "fine", "--state", store});
  EXPECT_EQ(bad.exit_code, 2) << bad.err;
  // No task is ever cached until the task cache exists: the filter does not offer the state.
  Result cached = Barge({"tasks", "last", "--only", "cached", "--state", store});
  EXPECT_EQ(cached.exit_code, 2) << cached.err;
  EXPECT_NE(cached.err.find("cached not in"), std::string::npos) << cached.err;
  // The old use of --state as the filter is told what to write, and creates no file "failed".
  Result old = Barge({"tasks", "last", "--state", "failed"});
  EXPECT_EQ(old.exit_code, 2) << old.err;
  EXPECT_NE(old.err.find("use --only failed"), std::string::npos) << old.err;
  EXPECT_FALSE(fs::exists(dir() / "failed"));
}

TEST_F(E2eTest, SqliteFilesBargeCannotUseAreNamed) {
  std::string garbage = Write("garbage.db", std::string(5000, 'g'));
  Result r = Barge({"runs", "--state", garbage});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find(garbage), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("file is not a database"), std::string::npos) << r.err;

  std::string p = Write("p.yaml", "name: p\nsteps:\n  - name: a\n    run: echo hi\n");
  std::string store = (dir() / "ro/state.db").string();
  ASSERT_EQ(Barge({"run", p, "--state", store}).exit_code, 0);
  ASSERT_EQ(::chmod(store.c_str(), 0444), 0);
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"run", p}, std::vector<std::string>{"runs"}}) {
    std::vector<std::string> with_state = args;
    with_state.insert(with_state.end(), {"--state", store});
    Result ro = Barge(with_state);
    EXPECT_EQ(ro.exit_code, 2) << ro.err;
    EXPECT_NE(ro.err.find(store), std::string::npos) << ro.err;
    EXPECT_NE(ro.err.find("read-only"), std::string::npos) << ro.err;
  }
}

TEST_F(E2eTest, ExecMasksSecretValuesButPassesThemUnchanged) {
  std::string p = Write("p.yaml", Cat(R"(name: p
steps:
  - name: a
    env:
      AWS_SECRET_ACCESS_KEY: wJalrXUtnFEMIK7MDENGbPxRfiCYzz
      AWS_ACCESS_KEY_ID: AKIAEXAMPLEID
      DATABASE_URL: postgres://u:)",
                                      kPassword, R"(@h/db
      PLAIN: visible-value
    run: printenv AWS_SECRET_ACCESS_KEY DATABASE_URL > "$BARGE_OUTPUT_DIR/env.txt"
)"));
  ASSERT_EQ(Barge({"run", p}).exit_code, 0);
  Result r = Barge({"exec", "last", "a", "0"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.find("wJalrXUtnFEMIK7MDENGbPxRfiCYzz"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find(kPassword), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("AWS_SECRET_ACCESS_KEY=[redacted]"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("DATABASE_URL=postgres://u:[redacted]@h/db"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("AWS_ACCESS_KEY_ID=AKIAEXAMPLEID"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("PLAIN=visible-value"), std::string::npos) << r.out;
  const std::string marker = "# output directory: ";
  size_t at = r.out.find(marker);
  ASSERT_NE(at, std::string::npos) << r.out;
  std::string out_dir = r.out.substr(at + marker.size(), r.out.find('\n', at) - at - marker.size());
  EXPECT_EQ(Read(out_dir + "/env.txt"),
            Cat("wJalrXUtnFEMIK7MDENGbPxRfiCYzz\npostgres://u:", kPassword, "@h/db\n"));
}

// Values the pipeline marks secret (secrets:, or a secret-looking param name) are never shown:
// not by status, not in exec's command or environment; the task gets them unchanged.
TEST_F(E2eTest, DeclaredSecretsAreMaskedInStatusAndExec) {
  std::string p = Write("p.yaml", R"(name: p
params: {pw: "hunter2-it's-pw", api_token: tok-3141592, day: "2026-01-01"}
secrets: [pw, DB_PASS]
steps:
  - name: a
    env: {DB_PASS: "{params.pw}", DAY: "{params.day}"}
    run: echo {params.pw} {params.api_token} "$DB_PASS" > "$BARGE_OUTPUT_DIR/seen.txt"
)");
  Result run = Barge({"run", p});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  nlohmann::json status = Json({"status", "last", "--json"});
  EXPECT_EQ(status["params"]["pw"], "[redacted]") << status.dump();
  EXPECT_EQ(status["params"]["api_token"], "[redacted]") << status.dump();
  EXPECT_EQ(status["params"]["day"], "2026-01-01") << status.dump();
  Result r = Barge({"exec", "last", "a", "0"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.find("hunter2"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("3141592"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("DB_PASS=[redacted]"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("DAY=2026-01-01"), std::string::npos) << r.out;
  const std::string marker = "# output directory: ";
  size_t at = r.out.find(marker);
  ASSERT_NE(at, std::string::npos) << r.out;
  std::string out_dir = r.out.substr(at + marker.size(), r.out.find('\n', at) - at - marker.size());
  EXPECT_EQ(Read(out_dir + "/seen.txt"), "hunter2-it's-pw tok-3141592 hunter2-it's-pw\n");
}

// `barge serve` refuses a token file before it listens: exit 2 and what to do about it.
class TokenFileTest : public E2eTest {
 protected:
  void SetUp() override {
    E2eTest::SetUp();
    ::unsetenv("BARGE_TOKEN");
  }
  Result Serve(const std::vector<std::string>& extra) {
    std::vector<std::string> args = {"serve", "--listen", "127.0.0.1:0"};
    args.insert(args.end(), extra.begin(), extra.end());
    return Barge(args);
  }
  std::string TokenFile(const std::string& name, const std::string& token, mode_t mode) {
    std::string path = Write(name, token + "\n");
    EXPECT_EQ(::chmod(path.c_str(), mode), 0);
    return path;
  }
};

TEST_F(TokenFileTest, ShortToken) {
  Result r = Serve({"--token-file", TokenFile("t", "abc", 0600)});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("at least 16 characters"), std::string::npos) << r.err;
}

TEST_F(TokenFileTest, GroupOrWorldReadable) {
  for (mode_t mode : {0644, 0640, 0604, 0660}) {
    std::string path = TokenFile("t", "0123456789abcdef0123", mode);
    Result r = Serve({"--token-file", path});
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_NE(r.err.find(Cat("chmod 600 ", path)), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find("0123456789abcdef0123"), std::string::npos) << r.err;
  }
}

TEST_F(TokenFileTest, Symlink) {
  std::string target = TokenFile("real", "0123456789abcdef0123", 0600);
  fs::create_symlink(target, dir() / "link");
  Result r = Serve({"--token-file", (dir() / "link").string()});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("symbolic link"), std::string::npos) << r.err;
}

TEST_F(TokenFileTest, OwnedBySomeoneElse) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to give a file away";
  std::string path = TokenFile("t", "0123456789abcdef0123", 0600);
  ASSERT_EQ(::chown(path.c_str(), 65534, 65534), 0);
  Result r = Serve({"--token-file", path});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("owned by uid 65534"), std::string::npos) << r.err;
}

TEST_F(TokenFileTest, ServeTokenBesideTheStateObeysTheSameRules) {
  TokenFile(".barge/serve.token", "0123456789abcdef0123", 0644);
  Result r = Serve({});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("serve.token"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("chmod 600"), std::string::npos) << r.err;
  TokenFile(".barge/serve.token", "short", 0600);
  r = Serve({});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("at least 16 characters"), std::string::npos) << r.err;
}

TEST_F(TokenFileTest, NewServeTokenIsPrivateFromTheStart) {
  pid_t pid = StartBarge({"serve", "--listen", "127.0.0.1:0"});
  fs::path token = dir() / ".barge/serve.token";
  WaitUntil(
      [&] { return Read((dir() / ".bg1.out").string()).find("listening") != std::string::npos; },
      "the first server");
  EXPECT_EQ(fs::file_size(token), 49u);  // 48 hex digits and a newline
  struct stat st {};
  ASSERT_EQ(::stat(token.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  ::kill(pid, SIGTERM);
  EXPECT_EQ(Wait(pid), 0);
  // A second start reads the same token back.
  std::string first = Read(token.string());
  pid = StartBarge({"serve", "--listen", "127.0.0.1:0"});
  WaitUntil(
      [&] { return Read((dir() / ".bg2.out").string()).find("listening") != std::string::npos; },
      "the second server");
  ::kill(pid, SIGTERM);
  EXPECT_EQ(Wait(pid), 0);
  EXPECT_EQ(Read(token.string()), first);
}

}  // namespace
}  // namespace barge::testing

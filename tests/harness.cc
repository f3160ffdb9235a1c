#include "harness.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

#include "common/strings.h"
#include "testing/postgres.h"

namespace barge::testing {
namespace {

std::vector<std::string> BargeArgv(const std::vector<std::string>& prefix,
                                   const std::vector<std::string>& args) {
  std::vector<std::string> argv = prefix;
  argv.push_back(BARGE_BINARY);
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

pid_t Spawn(const std::filesystem::path& cwd, std::vector<std::string> argv,
            const std::string& out_path, const std::string& err_path) {
  pid_t pid = ::fork();
  if (pid == 0) {
    if (::chdir(cwd.c_str()) != 0) ::_exit(126);
    int out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(out, 1);
    ::dup2(err, 2);
    std::vector<char*> cargv;
    for (std::string& a : argv) cargv.push_back(a.data());
    cargv.push_back(nullptr);
    ::execvp(cargv[0], cargv.data());
    ::_exit(127);
  }
  return pid;
}

}  // namespace

void E2eTest::SetUp() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  dir_ = std::filesystem::path(::testing::TempDir()) /
         Cat("barge-e2e-", info->test_suite_name(), "-", info->name(), "-", ::getpid());
  std::filesystem::remove_all(dir_);
  std::filesystem::create_directories(dir_);
  ::unsetenv("BARGE_STATE");
  ::unsetenv("BARGE_ROOT");
  ::unsetenv("BARGE_SCRATCH");
  ::unsetenv("BARGE_SHARED_ROOT");
}

void E2eTest::TearDown() {
  if (!HasFailure()) std::filesystem::remove_all(dir_);
}

std::string E2eTest::MarksIn(const std::string& yaml) const {
  return ReplaceAll(yaml, "@MARKS@", dir_.string());
}

bool E2eTest::UsePostgres() {
  const char* url = std::getenv("BARGE_TEST_POSTGRES");
  if (url == nullptr || *url == '\0') {
    if (std::getenv("BARGE_REQUIRE_POSTGRES") != nullptr) {
      ADD_FAILURE() << "BARGE_REQUIRE_POSTGRES is set but BARGE_TEST_POSTGRES is not";
    }
    return false;
  }
  absl::StatusOr<std::string> schema_url = PostgresSchemaUrl(url, "e2e", dir_.filename().string());
  EXPECT_TRUE(schema_url.ok()) << schema_url.status();
  if (!schema_url.ok()) return false;
  ::setenv("BARGE_STATE", schema_url->c_str(), 1);
  // Every process of a test shares this machine's disk, so a local root is shared; tests of
  // workers that cannot see it (travel_test.cc) unset this.
  ::setenv("BARGE_SHARED_ROOT", "1", 1);
  return true;
}

Result E2eTest::Barge(const std::vector<std::string>& args) {
  std::string out = (dir_ / ".out").string(), err = (dir_ / ".err").string();
  pid_t pid = Spawn(dir_, BargeArgv({}, args), out, err);
  Result r;
  r.exit_code = Wait(pid);
  r.out = Read(out);
  r.err = Read(err);
  return r;
}

pid_t E2eTest::StartBarge(const std::vector<std::string>& args,
                          const std::vector<std::string>& prefix) {
  return StartProcess(BargeArgv(prefix, args));
}

pid_t E2eTest::StartProcess(const std::vector<std::string>& argv) {
  ++background_;
  return Spawn(dir_, argv, (dir_ / Cat(".bg", background_, ".out")).string(),
               (dir_ / Cat(".bg", background_, ".err")).string());
}

int E2eTest::Wait(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

std::string E2eTest::Write(const std::string& relative, const std::string& text) {
  std::filesystem::path p = dir_ / relative;
  std::filesystem::create_directories(p.parent_path());
  std::ofstream(p) << text;
  return p.string();
}

std::string E2eTest::Read(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

nlohmann::json E2eTest::Json(const std::vector<std::string>& args) {
  Result r = Barge(args);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  nlohmann::json j = nlohmann::json::parse(r.out, nullptr, false);
  EXPECT_FALSE(j.is_discarded()) << r.out;
  return j;
}

void E2eTest::WaitUntil(const std::function<bool()>& done, const std::string& what,
                        std::chrono::seconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "timed out waiting for " << what;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

std::vector<pid_t> ProcessesWithEnv(const std::string& entry) {
  std::vector<pid_t> found;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/proc", ec)) {
    std::string name = e.path().filename().string();
    if (name.empty() || !std::isdigit(static_cast<unsigned char>(name[0]))) continue;
    std::ifstream environ(e.path() / "environ", std::ios::binary);
    std::string text((std::istreambuf_iterator<char>(environ)), std::istreambuf_iterator<char>());
    const std::string nul(1, '\0');
    if ((nul + text).find(Cat(nul, entry, nul)) == std::string::npos) continue;
    std::ifstream stat(e.path() / "stat");
    std::string line;
    std::getline(stat, line);
    size_t close = line.rfind(')');
    if (close == std::string::npos || line.substr(close + 2, 1) == "Z") continue;
    found.push_back(static_cast<pid_t>(std::stol(name)));
  }
  return found;
}

std::string RunIdFrom(const Result& r) {
  if (!r.out.starts_with("run ")) return "";
  return r.out.substr(4, r.out.find('\n') - 4);
}

std::vector<std::string> ServeCommand(const std::filesystem::path& dir,
                                      const std::vector<std::string>& extra) {
  std::string cmd = Cat("cd '", dir.string(), "' && exec '", BARGE_BINARY,
                        "' serve --listen 127.0.0.1:0 --tick 100ms");
  for (const std::string& a : extra) cmd += " '" + a + "'";
  return {"/bin/sh", "-c", cmd};
}

}  // namespace barge::testing

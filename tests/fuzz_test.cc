// Random bytes as file names, foreach items and params, through `barge validate`, `barge run` and
// POST /api/runs of a `barge serve` with a `barge worker` beside it. Whatever the bytes, no barge
// process aborts (every exit code is one barge documents), the server and the worker keep
// running, and the store stays usable. The generator is seeded (printed; BARGE_FUZZ_SEED picks
// another) so a failure can be replayed.
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <random>
#include <set>

#include "common/strings.h"
#include "common/text.h"
#include "harness.h"
#include "server_fixture.h"

namespace barge::testing {
namespace {

constexpr char kToken[] = "fuzz-token-0123456789abcdef0123";
constexpr int kRounds = 16;

// Byte strings built from pieces that have broken barge or could: bytes that are not UTF-8,
// NUL, control characters, quotes, backslashes, shell syntax, placeholders, valid multibyte
// UTF-8, and long runs.
class ByteFuzzer {
 public:
  explicit ByteFuzzer(uint64_t seed) : rng_(seed) {}

  uint64_t Below(uint64_t n) { return rng_() % n; }

  // Hostile: any byte. Otherwise only what barge can carry (valid UTF-8, no NUL or control
  // characters), still full of quotes, backslashes and shell syntax, so that runs go through.
  std::string Bytes(bool hostile, size_t max_pieces = 6) {
    static const std::vector<std::string> kCarriable = {"'",
                                                        "\"",
                                                        "\\",
                                                        "$(id)",
                                                        "`",
                                                        " ",
                                                        "-",
                                                        "a",
                                                        "report.csv",
                                                        "\xc3\xa9",
                                                        "\xe6\x97\xa5\xe6\x9c\xac",
                                                        "\xf0\x9f\x98\x80",
                                                        "{item}",
                                                        "{params.p}",
                                                        "%s",
                                                        "*",
                                                        "?",
                                                        ";",
                                                        "#",
                                                        ":",
                                                        "&x",
                                                        "!"};
    static const std::vector<std::string> kHostile = {
        "\xff",         std::string(1, '\0'), "\n",   "\r",       "\t",      "\xc3",
        "\xed\xa0\x80", "\xc0\xaf",           "\x7f", "\x1b[31m", "\xfe\xff"};
    std::string out;
    size_t pieces = 1 + Below(max_pieces);
    for (size_t i = 0; i < pieces; ++i) {
      switch (Below(5)) {
        case 0:
          out += static_cast<char>(hostile ? Below(256) : 0x20 + Below(0x5f));
          break;
        case 1:
          out += std::string(1 + Below(120), static_cast<char>('a' + Below(26)));
          break;
        case 2:
          if (hostile) {
            out += kHostile[Below(kHostile.size())];
            break;
          }
          [[fallthrough]];
        default:
          out += kCarriable[Below(kCarriable.size())];
      }
    }
    return out;
  }

  // A name the filesystem accepts: no '/', no NUL, not "." or "..", at most 200 bytes.
  std::string FileName(bool hostile) {
    for (;;) {
      std::string name = Bytes(hostile, 4);
      std::erase(name, '/');
      std::erase(name, '\0');
      if (name.size() > 200) name.resize(200);
      if (!name.empty() && name != "." && name != "..") return name;
    }
  }

 private:
  std::mt19937_64 rng_;
};

// `s` in a YAML double-quoted string: raw (bytes as they are, only '"', '\\' and control
// characters escaped, so invalid UTF-8 reaches the file) or escaped (every byte >= 0x80 as \xHH,
// which YAML reads as that code point).
std::string YamlQuoted(const std::string& s, bool raw) {
  std::string out = "\"";
  for (char c : s) {
    auto b = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (b < 0x20 || b == 0x7f || (!raw && b >= 0x80)) {
      out += fmt::format("\\x{:02x}", b);
    } else {
      out += c;
    }
  }
  return out + "\"";
}

// `s` as octal escapes for the shell's printf.
std::string PrintfOctal(const std::string& s) {
  std::string out;
  for (char c : s) out += fmt::format("\\{:03o}", static_cast<unsigned char>(c));
  return out;
}

bool Alive(pid_t pid) {
  int status = 0;
  return ::waitpid(pid, &status, WNOHANG) == 0;
}

class FuzzTest : public ServerTest {
 protected:
  FuzzTest() : ServerTest(kToken) {}

  void ExpectDocumentedExit(const Result& r, const std::string& what) {
    static const std::set<int> kDocumented = {0, 1, 2, 130};
    EXPECT_TRUE(kDocumented.contains(r.exit_code)) << what << " exited " << r.exit_code << "\n"
                                                   << r.err.substr(0, 2000);
  }

  // A pipeline over this round's files, items and param, and a file created while it runs.
  std::string Spec(ByteFuzzer& fuzz, int round, bool hostile, const std::string& created) {
    bool raw = fuzz.Below(2) == 0;
    std::vector<std::string> items;
    for (int i = 0; i < 3; ++i) items.push_back(YamlQuoted(fuzz.Bytes(hostile), raw));
    std::string dyn = (dir() / Cat("dyn", round)).string();
    return Cat("name: fuzz\nparams: {p: ", YamlQuoted(fuzz.Bytes(hostile), raw),
               "}\nsteps:\n"
               "  - name: files\n    foreach: files(\"in",
               round,
               "/*\")\n    run: printf '%s' {item} >/dev/null\n"
               "  - name: items\n    foreach: [",
               Join(items, ", "),
               "]\n    run: printf '%s' {item} {params.p} >/dev/null\n"
               "  - name: argv\n    foreach: [",
               Join(items, ", "),
               "]\n    run: [printf, '%s', '{item}']\n    env: {V: '{params.p}'}\n"
               "  - name: make\n    run: printf x > \"",
               dyn, "/$(printf '", PrintfOctal(created),
               "')\"\n"
               "  - name: dyn\n    needs: [make]\n    foreach: files(\"dyn",
               round, "/*\")\n    run: printf '%s' {item} >/dev/null\n");
  }

  httplib::Result Submit(const std::string& body) {
    return client_->Post("/api/runs", {{"Authorization", Cat("Bearer ", kToken)}}, body,
                         "application/json");
  }
};

TEST_F(FuzzTest, RandomBytesNeverAbortABargeProcess) {
  uint64_t seed = 0x6261726765;  // "barge"
  if (const char* s = std::getenv("BARGE_FUZZ_SEED")) seed = std::strtoull(s, nullptr, 0);
  std::printf("[   SEED   ] BARGE_FUZZ_SEED=%llu\n", static_cast<unsigned long long>(seed));
  RecordProperty("seed", std::to_string(seed));
  ByteFuzzer fuzz(seed);

  // The rounds' files are the runs' data, not their code: out of the bundle (whose own refusal
  // of names it cannot carry is BadBytesTest.ABadlyNamedFileBesideAPipelineIsRefusedAtSubmit).
  Write(".bargeignore", "in*/\ndyn*/\n");
  StartServer({});
  pid_t worker = StartBarge({"worker", "--cpu", "4", "--lease", "5s"});
  // Every round runs: a slow machine takes longer, it does not test less. The deadline only
  // stops a hung barge from holding the suite.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(10);
  int submitted = 0, rounds = 0;
  for (int round = 0; round < kRounds; ++round) {
    SCOPED_TRACE(Cat("round ", round));
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "the rounds took over 10 minutes";
    bool hostile = round % 2 == 0;  // odd rounds carry only what barge can, and runs go through
    std::filesystem::create_directories(dir() / Cat("in", round));
    std::filesystem::create_directories(dir() / Cat("dyn", round));
    Write(Cat("in", round, "/plain.txt"), "x");
    Write(Cat("dyn", round, "/plain.txt"), "x");
    for (int i = 0; i < 3; ++i) {
      std::ofstream(dir() / Cat("in", round) / fuzz.FileName(hostile)) << "x";  // may fail: skipped
    }
    // The file a step creates while the run goes: hostile in every round but the last.
    std::string created = fuzz.FileName(round != kRounds - 1);
    std::string spec = Spec(fuzz, round, hostile, created);
    std::string p = Write(Cat("fuzz", round, ".yaml"), spec);
    std::string param = fuzz.Bytes(hostile);
    std::erase(param, '\0');  // an argv cannot hold one; the API case below can
    std::vector<std::string> flags = {"-p", Cat("p=", param)};

    Result v = Barge({"validate", p, flags[0], flags[1]});
    ExpectDocumentedExit(v, "validate");
    Result r = Barge({"run", p, flags[0], flags[1], "--workers", "4"});
    ExpectDocumentedExit(r, "run");
    if (v.exit_code == 2) {
      EXPECT_EQ(r.exit_code, 2) << "run refuses what validate refused";
    }

    // The same through the API, over directories of its own (so that the worker meets the
    // created file only while the run goes). JSON cannot hold bytes that are not UTF-8, so
    // these are sent either replaced (DumpJson) or raw, which the server must refuse as
    // malformed JSON.
    int api_round = kRounds + round;
    Write(Cat("in", api_round, "/plain.txt"), "x");
    Write(Cat("dyn", api_round, "/plain.txt"), "x");
    std::string api_spec = Spec(fuzz, api_round, hostile, created);
    nlohmann::json body = {{"spec", api_spec}, {"params", {{"p", fuzz.Bytes(hostile)}}}};
    std::string text = DumpJson(body);
    bool raw_byte = fuzz.Below(4) == 0;
    if (raw_byte) text.insert(text.find("\"spec\":") + 8, "\xff");
    httplib::Result reply = Submit(text);
    ASSERT_TRUE(reply) << "POST /api/runs: " << httplib::to_string(reply.error());
    EXPECT_TRUE(reply->status == 201 || reply->status == 400) << reply->status << reply->body;
    if (reply->status == 201) ++submitted;
    if (!hostile) {
      // Only what barge can carry, but for the file the run creates: validate and the API
      // accept, and the run succeeds unless that file cannot be carried.
      bool carriable = CheckCarriableName("file", created).ok();
      EXPECT_EQ(v.exit_code, 0) << v.err;
      EXPECT_EQ(r.exit_code, carriable ? 0 : 1) << r.err;
      if (!raw_byte) {
        EXPECT_EQ(reply->status, 201) << reply->body;
      }
    }
    ASSERT_TRUE(Alive(worker)) << "the worker died: " << Read((dir() / ".bg1.err").string());
    ++rounds;
  }
  ASSERT_EQ(rounds, kRounds);
  std::printf("[   FUZZ   ] %d runs accepted through the API\n", submitted);

  // The worker finishes (or fails) every run the API accepted.
  WaitUntil(
      [&] {
        if (!Alive(worker)) return true;
        Result runs = Barge({"runs", "--json", "--only", "running"});
        return runs.exit_code != 0 || runs.out.find("\"id\"") == std::string::npos;
      },
      "every run to end", std::chrono::minutes(5));
  ASSERT_TRUE(Alive(worker)) << "the worker died: " << Read((dir() / ".bg1.err").string());
  httplib::Result health = client_->Get("/api/health");
  ASSERT_TRUE(health) << "the server died: " << Read((dir() / "serve.log").string());
  EXPECT_EQ(health->status, 200);

  // A normal run on the same store.
  Write("good.yaml", "name: good\nsteps:\n  - name: a\n    foreach: range(4)\n    run: echo ok\n");
  Result good = Barge({"run", "good.yaml"});
  EXPECT_EQ(good.exit_code, 0) << good.err;
  ::kill(worker, SIGTERM);
  EXPECT_EQ(Wait(worker), 0);
}

}  // namespace
}  // namespace barge::testing

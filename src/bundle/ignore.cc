#include "bundle/ignore.h"

#include <fnmatch.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>

#include "common/fs.h"
#include "common/status.h"
#include "common/strings.h"

namespace barge {
namespace fs = std::filesystem;
namespace {

std::vector<std::string_view> SplitPath(std::string_view path) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (start <= path.size()) {
    size_t slash = path.find('/', start);
    if (slash == std::string_view::npos) slash = path.size();
    if (slash > start) out.push_back(path.substr(start, slash - start));
    start = slash + 1;
  }
  return out;
}

// Matches pattern segments [pi..] against name segments [ni..]. "**" matches any number of
// segments, except last, where it needs at least one ("x/**" is what is inside x, not x).
bool MatchSegments(const std::vector<std::string>& pattern, size_t pi,
                   const std::vector<std::string>& name, size_t ni) {
  if (pi == pattern.size()) return ni == name.size();
  if (pattern[pi] == "**") {
    if (pi + 1 == pattern.size()) return ni < name.size();
    for (size_t k = ni; k <= name.size(); ++k) {
      if (MatchSegments(pattern, pi + 1, name, k)) return true;
    }
    return false;
  }
  if (ni == name.size()) return false;
  if (::fnmatch(pattern[pi].c_str(), name[ni].c_str(), 0) != 0) return false;
  return MatchSegments(pattern, pi + 1, name, ni + 1);
}

// Trailing spaces are dropped unless escaped with a backslash, as git does.
std::string_view StripLine(std::string_view line) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  while (!line.empty() && line.back() == ' ') {
    if (line.size() >= 2 && line[line.size() - 2] == '\\') break;
    line.remove_suffix(1);
  }
  return line;
}

absl::Status ErrnoError(std::string_view what, const std::string& path) {
  return absl::InternalError(Cat(what, " ", path, ": ", std::strerror(errno)));
}

std::string NormalAbsolute(const std::string& path) {
  std::string p = AbsolutePath(path);
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  return p;
}

class Walker {
 public:
  Walker(std::string root, const std::vector<std::string>& exclude) : root_(std::move(root)) {
    for (const std::string& e : exclude) exclude_.insert(NormalAbsolute(e));
  }

  absl::Status Walk(const std::string& rel) {
    const std::string abs = rel.empty() ? root_ : Cat(root_, "/", rel);
    size_t mark = rules_.size();
    for (const char* name : {".gitignore", ".bargeignore"}) {
      std::string file = Cat(abs, "/", name);
      struct stat st;
      if (::lstat(file.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
      ASSIGN_OR_RETURN(std::string text, ReadFile(file));
      rules_.AddFile(text, rel);
    }
    std::vector<std::string> names;
    std::error_code ec;
    for (fs::directory_iterator it(abs, ec), end; !ec && it != end; it.increment(ec)) {
      names.push_back(it->path().filename().string());
    }
    if (ec) return absl::InternalError(Cat("listing ", abs, ": ", ec.message()));
    std::sort(names.begin(), names.end());
    for (const std::string& name : names) {
      if (name == ".git") continue;
      std::string child_rel = rel.empty() ? name : Cat(rel, "/", name);
      std::string child_abs = Cat(abs, "/", name);
      struct stat st;
      if (::lstat(child_abs.c_str(), &st) != 0) return ErrnoError("reading", child_abs);
      bool is_dir = S_ISDIR(st.st_mode);
      if (rules_.Ignored(child_rel, is_dir)) continue;
      if (exclude_.count(NormalAbsolute(child_abs)) > 0) continue;
      WalkEntry entry;
      entry.path = child_rel;
      entry.mode = st.st_mode & 07777;
      if (S_ISREG(st.st_mode)) {
        entry.kind = WalkEntry::Kind::kFile;
        entry.size = st.st_size;
      } else if (is_dir) {
        entry.kind = WalkEntry::Kind::kDirectory;
      } else if (S_ISLNK(st.st_mode)) {
        entry.kind = WalkEntry::Kind::kSymlink;
        std::string target(static_cast<size_t>(st.st_size) + 256, '\0');
        ssize_t n = ::readlink(child_abs.c_str(), target.data(), target.size());
        if (n < 0) return ErrnoError("reading link", child_abs);
        target.resize(static_cast<size_t>(n));
        entry.link_target = std::move(target);
      }
      entries_.push_back(std::move(entry));
      if (is_dir) RETURN_IF_ERROR(Walk(child_rel));
    }
    rules_.Truncate(mark);
    return absl::OkStatus();
  }

  std::vector<WalkEntry> Take() { return std::move(entries_); }

 private:
  const std::string root_;
  std::set<std::string> exclude_;
  IgnoreRules rules_;
  std::vector<WalkEntry> entries_;
};

}  // namespace

void IgnoreRules::AddFile(std::string_view text, const std::string& base) {
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = StripLine(text.substr(start, end - start));
    start = end + 1;
    if (line.empty() || line[0] == '#') continue;
    Rule rule;
    rule.base = base;
    if (line[0] == '!') {
      rule.negate = true;
      line.remove_prefix(1);
    }
    if (!line.empty() && line.back() == '/') {
      rule.dir_only = true;
      line.remove_suffix(1);
    }
    if (line.empty()) continue;
    bool anchored = line.find('/') != std::string_view::npos;
    if (!anchored) rule.segments.push_back("**");
    for (std::string_view segment : SplitPath(line)) rule.segments.emplace_back(segment);
    if (rule.segments.empty()) continue;
    rules_.push_back(std::move(rule));
  }
}

bool IgnoreRules::Ignored(std::string_view path, bool is_dir) const {
  std::vector<std::string> name;
  for (std::string_view s : SplitPath(path)) name.emplace_back(s);
  for (auto it = rules_.rbegin(); it != rules_.rend(); ++it) {
    const Rule& rule = *it;
    if (rule.dir_only && !is_dir) continue;
    size_t skip = 0;
    if (!rule.base.empty()) {
      std::vector<std::string_view> base = SplitPath(rule.base);
      if (base.size() >= name.size()) continue;
      if (!std::equal(base.begin(), base.end(), name.begin())) continue;
      skip = base.size();
    }
    std::vector<std::string> below(name.begin() + static_cast<ptrdiff_t>(skip), name.end());
    if (MatchSegments(rule.segments, 0, below, 0)) return !rule.negate;
  }
  return false;
}

absl::StatusOr<std::vector<WalkEntry>> WalkUnignored(const std::string& dir,
                                                     const std::vector<std::string>& exclude) {
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return absl::NotFoundError(Cat("pipeline directory ", dir, " is not a directory"));
  }
  Walker walker(NormalAbsolute(dir), exclude);
  RETURN_IF_ERROR(walker.Walk(""));
  return walker.Take();
}

}  // namespace barge

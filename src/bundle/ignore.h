// What of a pipeline's directory goes into its code bundle: gitignore-style rules read from the
// .gitignore and .bargeignore files of the directory and its subdirectories, and a walk that
// applies them. No library in Debian matches gitignore patterns without a git repository, so this
// is a small matcher over fnmatch(3) covering the syntax people use:
//
//   - blank lines and lines starting with '#' are skipped; "\#" and "\!" match a literal # or !;
//   - "!pattern" re-includes what an earlier rule excluded (the last matching rule wins);
//   - a trailing '/' matches directories only;
//   - a '/' at the start or in the middle anchors the pattern to the directory of the file that
//     holds it; otherwise it matches a name at any depth below that directory;
//   - '*', '?' and '[...]' match within one path segment; "**" as a whole segment matches zero
//     or more segments ("**/x", "a/**/b"), and at the end one or more ("x/**");
//   - an excluded directory is not descended into, so nothing inside it can be re-included.
//
// Rules of a deeper directory's files come after (and so win over) those of its ancestors; in one
// directory, .bargeignore's rules come after .gitignore's. ".git" is always left out.
//
//   IgnoreRules rules;
//   rules.AddFile("*.o\n!keep.o\nbuild/\n", "");  // the root's .gitignore
//   rules.Ignored("src/a.o", false);              // true
//   ASSIGN_OR_RETURN(std::vector<WalkEntry> entries, WalkUnignored(dir, {scratch_dir}));
//
// Thread-safety: IgnoreRules is a value; const methods may be called from several threads.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace barge {

class IgnoreRules {
 public:
  // Adds the rules of one ignore file whose text is `text`, held in the directory `base`
  // ('/'-separated, relative to the walked root; "" for the root itself).
  void AddFile(std::string_view text, const std::string& base);

  // Whether `path` (relative to the root, '/'-separated, no trailing '/') is excluded by the
  // last rule that matches it. Only the path itself is tested, not its parents: the walk asks
  // about a directory before its contents and does not descend into an excluded one.
  bool Ignored(std::string_view path, bool is_dir) const;

  // The number of rules, and dropping those added after the first `n` (the walk pops a
  // directory's rules when it leaves it).
  size_t size() const { return rules_.size(); }
  void Truncate(size_t n) { rules_.resize(n); }

 private:
  struct Rule {
    std::string base;                   // the ignore file's directory, "" for the root
    std::vector<std::string> segments;  // the pattern split at '/'; "**" as its own segment
    bool negate = false;
    bool dir_only = false;
  };
  std::vector<Rule> rules_;
};

// One file, directory or symbolic link found by WalkUnignored (from lstat).
struct WalkEntry {
  enum class Kind { kFile, kDirectory, kSymlink, kOther };
  std::string path;  // relative to the root, '/'-separated
  Kind kind = Kind::kOther;
  mode_t mode = 0;          // permission bits (st_mode & 07777)
  int64_t size = 0;         // regular files only
  std::string link_target;  // symbolic links only, as readlink(2) gives it
};

// Everything under `dir` that the ignore files there leave in, minus ".git" (at any depth) and
// the absolute paths in `exclude` (compared after making both absolute and lexically normal).
// Entries come depth first with each directory's names in byte order, a directory before its
// contents. The ignore files are themselves listed unless a rule excludes them. NotFound if
// `dir` is not a directory; Internal for I/O errors.
absl::StatusOr<std::vector<WalkEntry>> WalkUnignored(const std::string& dir,
                                                     const std::vector<std::string>& exclude);

}  // namespace barge

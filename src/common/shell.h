// Quoting for POSIX sh, so that a value substituted into a shell command is always one word and
// never interpreted: spaces, quotes, $(...), `...`, ';', globs and a leading '-' stay literal.
#pragma once

#include <string>
#include <string_view>

namespace barge {

// Returns `value` as a single-quoted sh word: abc -> 'abc', it's -> 'it'\''s'.
std::string ShellQuote(std::string_view value);

}  // namespace barge

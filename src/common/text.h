// User data as text: file names, items and params are bytes on Linux, and barge carries them
// through JSON (the state store, the API, manifests), which holds only valid UTF-8. This file is
// the one place that decides what can be carried and how bytes are shown in messages.
//
//   if (absl::Status s = CheckCarriable("output name", name); !s.ok()) return s;
//   std::string text = DumpJson(j);          // never throws, whatever the bytes
//   Cat("cannot read ", ShowBytes(path));    // "cannot read data/\xff.csv"
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace barge {

// True if `s` is well-formed UTF-8 (no overlong forms, no surrogates, nothing above U+10FFFF).
bool IsValidUtf8(std::string_view s);

// The length of the longest prefix of `s` that is well-formed UTF-8: s.size() if all of it is,
// else the offset of the first byte that does not begin a valid sequence.
size_t Utf8ValidPrefix(std::string_view s);

// `s` with every byte that is not printable ASCII or part of valid UTF-8 shown as \xHH, and
// backslash, newline, tab and carriage return as \\, \n, \t, \r: safe to put in a message, a
// log line or JSON, and unambiguous (a name that shows as `a\nb` holds a newline).
std::string ShowBytes(std::string_view s);

// OK if `value` can be carried faithfully everywhere barge puts user text: valid UTF-8 with no NUL
// byte. Otherwise InvalidArgument: "<what> <ShowBytes(value)> is not valid UTF-8" (or "holds a NUL
// byte"), so the message names the offending value without breaking the message itself.
absl::Status CheckCarriable(std::string_view what, std::string_view value);

// As CheckCarriable, and also refuses control characters (newline, tab, ...), which break
// line-oriented lists such as $BARGE_INPUT_LIST: for file and object names.
absl::Status CheckCarriableName(std::string_view what, std::string_view name);

// j.dump(indent), except that it never throws: invalid UTF-8 in a string (which should have been
// refused earlier) is replaced by U+FFFD instead of ending the process. Every JSON encoding of
// data that came from a user, a file name or a task goes through this.
std::string DumpJson(const nlohmann::json& j, int indent = -1);

}  // namespace barge

// A place in a text file, for error messages.
#pragma once

namespace barge {

struct SourceLocation {
  int line = 0;    // 1-based
  int column = 0;  // 1-based
};

}  // namespace barge

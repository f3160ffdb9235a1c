// Live progress of a run on the terminal: a redrawn block with a line per step (done/running/
// failed, elapsed, ETA) when stderr is a terminal, and plain lines when a step changes state
// otherwise (logs, CI).
//
// Thread-safety: not thread-safe; called from the worker's loop thread.
#pragma once

#include <cstdio>
#include <map>
#include <string>

#include "store/state_store.h"

namespace barge {

class Progress {
 public:
  Progress(StateStore& store, std::string run_id, std::FILE* out);

  bool interactive() const { return interactive_; }
  // Reads the run's state and draws it.
  void Update();
  // Draws the final state (always as plain lines' summary, after the live block).
  void Finish();

 private:
  StateStore& store_;
  std::string run_id_;
  std::FILE* out_;
  bool interactive_;
  int drawn_lines_ = 0;
  std::map<std::string, std::string> last_state_;  // plain mode: step -> state printed
};

}  // namespace barge

// Live progress of a run on the terminal: a redrawn block with a line per step (done/running/
// failed, elapsed, ETA) when stderr is a terminal, and plain lines when a step changes state
// otherwise (logs, CI).
//
// Thread-safety: not thread-safe; called from the worker's loop thread.
#pragma once

#include <cstdio>
#include <map>
#include <string>

#include "common/clock.h"
#include "store/run_store.h"

namespace barge {

class Progress {
 public:
  // Interactive (a redrawn block) when `out` is a terminal.
  Progress(RunStore& runs, std::string run_id, std::FILE* out);
  Progress(RunStore& runs, std::string run_id, std::FILE* out, bool interactive);

  bool interactive() const { return interactive_; }
  // Reads the run's state and draws it. Counting a run's tasks reads every one of them (about
  // 0.2-0.7 s for 100k on PostgreSQL while they churn), so plain mode counts only when a step
  // changed state, and the live block is redrawn at most as often as keeps counting under 5% of
  // the caller's time.
  void Update();
  // Draws the final state (always as plain lines' summary, after the live block).
  void Finish();

 private:
  RunStore& runs_;
  std::string run_id_;
  std::FILE* out_;
  bool interactive_;
  void Draw(bool force);

  int drawn_lines_ = 0;
  Pacer count_pacer_;                              // live block: counting under 5% of the time
  std::map<std::string, std::string> last_state_;  // plain mode: step -> state printed
};

}  // namespace barge

#include "cli/progress.h"

#include <unistd.h>

#include <vector>

#include "common/clock.h"
#include "common/strings.h"
#include "common/units.h"

namespace barge {
namespace {

std::string Bar(int64_t done, int64_t total, int width) {
  int filled = total > 0 ? static_cast<int>(done * width / total) : 0;
  std::string bar;
  for (int i = 0; i < width; ++i) bar += i < filled ? "\u2588" : "\u2591";
  return bar;
}

}  // namespace

Progress::Progress(RunStore& runs, std::string run_id, std::FILE* out)
    : Progress(runs, std::move(run_id), out, ::isatty(fileno(out)) != 0) {}

Progress::Progress(RunStore& runs, std::string run_id, std::FILE* out, bool interactive)
    : runs_(runs), run_id_(std::move(run_id)), out_(out), interactive_(interactive) {}

void Progress::Update() { Draw(/*force=*/false); }

void Progress::Finish() { Draw(/*force=*/true); }

void Progress::Draw(bool force) {
  int64_t started = MonotonicMs();
  if (interactive_ && !force && !count_pacer_.Due(started)) return;
  absl::StatusOr<RunRecord> run = runs_.GetRun(run_id_);
  absl::StatusOr<std::vector<StepRecord>> steps = runs_.GetSteps(run_id_);
  if (!run.ok() || !steps.ok()) return;
  if (!interactive_) {
    bool changed = false;
    for (const StepRecord& s : *steps) changed |= last_state_[s.name] != s.state;
    if (!changed) return;
  }
  absl::StatusOr<std::vector<StepCounts>> counts = runs_.CountTasks(run_id_);
  if (!counts.ok()) return;
  count_pacer_.Took(started, MonotonicMs());
  std::map<std::string, StepCounts> by_step;
  for (const StepCounts& c : *counts) by_step[c.step] = c;
  int64_t now = runs_.NowMs();
  size_t name_width = 4;
  for (const StepRecord& s : *steps) name_width = std::max(name_width, s.name.size());

  if (!interactive_) {
    for (const StepRecord& s : *steps) {
      const StepCounts& c = by_step[s.name];
      std::string& last = last_state_[s.name];
      if (last == s.state) continue;
      last = s.state;
      if (s.state == state::kPending) continue;
      std::string detail = Cat(c.Done(), "/", c.Total(), " done");
      if (c.failed > 0) detail += Cat(", ", c.failed, " failed");
      std::fprintf(out_, "[%s] step %s %s (%s)\n", FormatDurationMs(now - run->created_at).c_str(),
                   s.name.c_str(), s.state.c_str(), detail.c_str());
    }
    std::fflush(out_);
    return;
  }

  std::vector<std::string> lines;
  lines.push_back(Cat("run ", run->id, "  ", run->pipeline, "  ", run->state, "  ",
                      FormatDurationMs(now - run->created_at)));
  for (const StepRecord& s : *steps) {
    const StepCounts& c = by_step[s.name];
    std::string line = fmt::format("  {:<{}}  ", s.name, name_width);
    if (s.state == state::kPending) {
      line += "waiting";
    } else {
      line += fmt::format("{} {:>7}", Bar(c.Done(), c.Total(), 20), Cat(c.Done(), "/", c.Total()));
      if (c.running > 0) line += Cat("  ", c.running, " running");
      if (c.failed > 0) line += Cat("  \x1b[31m", c.failed, " failed\x1b[0m");
      int64_t end = s.finished_at > 0 ? s.finished_at : now;
      line += Cat("  ", FormatDurationMs(end - s.started_at));
      if (s.state == state::kRunning && c.Done() > 0 && c.Done() < c.Total()) {
        int64_t eta = (now - s.started_at) * (c.Total() - c.Done()) / c.Done();
        line += Cat("  ETA ", FormatDurationMs(eta));
      } else if (s.state != state::kRunning) {
        line += Cat("  ", s.state);
      }
    }
    lines.push_back(std::move(line));
  }
  std::string frame;
  if (drawn_lines_ > 0) frame += fmt::format("\x1b[{}A", drawn_lines_);
  frame += "\x1b[J";
  for (const std::string& l : lines) frame += l + "\n";
  std::fputs(frame.c_str(), out_);
  std::fflush(out_);
  drawn_lines_ = static_cast<int>(lines.size());
}

}  // namespace barge

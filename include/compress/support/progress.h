// Progress for long work: a redrawn bar on a terminal, plain lines otherwise.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace compress {

// Note [Progress output]
// On a TTY the bar is redrawn in place at most ~10 times a second. When stderr
// is a pipe or file (CI logs), a plain line is printed at each 10% step, so logs
// stay short and readable. Disabled reporters cost one branch per update.
class ProgressReporter {
 public:
  enum class Mode { kAuto, kBar, kLines, kOff };

  ProgressReporter(std::string label, int64_t total, Mode mode = Mode::kAuto, std::FILE* out = stderr);
  ~ProgressReporter();
  ProgressReporter(const ProgressReporter&) = delete;
  ProgressReporter& operator=(const ProgressReporter&) = delete;

  void advance(int64_t steps = 1);
  void set(int64_t done);
  // Text shown after the counts from the next redraw on ("loss 0.4123,
  // 850 samples/s"); empty for none.
  void set_detail(std::string detail) { detail_ = std::move(detail); }
  // Prints the final state (100% or where it stopped) once.
  void finish();
  int64_t done() const { return done_; }
  int64_t total() const { return total_; }

  // Silences every reporter created afterwards (library users, quiet CLIs).
  static void set_default_mode(Mode mode);

 private:
  void render(bool final_line);

  std::string label_;
  std::string detail_;
  int64_t total_;
  int64_t done_ = 0;
  Mode mode_;
  std::FILE* out_;
  int last_decile_ = -1;
  bool finished_ = false;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_draw_;
};

}  // namespace compress

#include "compress/support/progress.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>

namespace compress {
namespace {
std::atomic<int> g_default_mode{static_cast<int>(ProgressReporter::Mode::kAuto)};
constexpr int kBarWidth = 30;
}  // namespace

void ProgressReporter::set_default_mode(Mode mode) { g_default_mode.store(static_cast<int>(mode)); }

ProgressReporter::ProgressReporter(std::string label, int64_t total, Mode mode, std::FILE* out)
    : label_(std::move(label)), total_(std::max<int64_t>(total, 0)), mode_(mode), out_(out) {
  if (mode_ == Mode::kAuto) {
    const auto fallback = static_cast<Mode>(g_default_mode.load());
    if (fallback != Mode::kAuto) {
      mode_ = fallback;
    } else {
      mode_ = (out_ != nullptr && isatty(fileno(out_))) ? Mode::kBar : Mode::kLines;
    }
  }
  if (out_ == nullptr) mode_ = Mode::kOff;
  start_ = std::chrono::steady_clock::now();
  last_draw_ = start_ - std::chrono::seconds(1);
}

ProgressReporter::~ProgressReporter() {
  if (!finished_) finish();
}

void ProgressReporter::advance(int64_t steps) { set(done_ + steps); }

void ProgressReporter::set(int64_t done) {
  done_ = std::clamp<int64_t>(done, 0, total_);
  if (mode_ == Mode::kOff) return;
  render(false);
}

void ProgressReporter::finish() {
  if (finished_) return;
  finished_ = true;
  if (mode_ == Mode::kOff) return;
  render(true);
}

void ProgressReporter::render(bool final_line) {
  const auto now = std::chrono::steady_clock::now();
  const double seconds = std::chrono::duration<double>(now - start_).count();
  const double fraction = total_ > 0 ? static_cast<double>(done_) / static_cast<double>(total_) : 1.0;
  if (mode_ == Mode::kBar) {
    if (!final_line && now - last_draw_ < std::chrono::milliseconds(100)) return;
    last_draw_ = now;
    const int filled = static_cast<int>(fraction * kBarWidth);
    std::string bar(static_cast<size_t>(filled), '#');
    bar.resize(kBarWidth, '.');
    // "\033[K" clears what a longer earlier detail left at the end of the line.
    std::fprintf(out_, "\r%s [%s] %3d%% %lld/%lld %.1fs%s%s\033[K%s", label_.c_str(), bar.c_str(),
                 static_cast<int>(fraction * 100.0), static_cast<long long>(done_),
                 static_cast<long long>(total_), seconds, detail_.empty() ? "" : " ", detail_.c_str(),
                 final_line ? "\n" : "");
    std::fflush(out_);
    return;
  }
  const int decile = static_cast<int>(fraction * 10.0);
  if (!final_line && decile == last_decile_) return;
  if (final_line && decile == last_decile_ && done_ == total_) return;
  last_decile_ = decile;
  std::fprintf(out_, "%s: %lld/%lld (%d%%) %.1fs%s%s\n", label_.c_str(), static_cast<long long>(done_),
               static_cast<long long>(total_), static_cast<int>(fraction * 100.0), seconds,
               detail_.empty() ? "" : ", ", detail_.c_str());
  std::fflush(out_);
}

}  // namespace compress

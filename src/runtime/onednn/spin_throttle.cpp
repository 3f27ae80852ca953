// The adaptive OpenMP spin throttle (Note [Spinning on a busy machine]).
#include "spin_throttle.h"

#include <omp.h>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <thread>

#include "compress/support/cpu_load.h"
#include "compress/support/logging.h"

namespace compress::runtime::onednn {
namespace {

enum class Mode { kAuto, kOn, kOff };

// Others' cores above which the short spin starts, and below which (for
// kQuietWindows windows in a row) it ends.
constexpr double kOnCores = 0.5;
constexpr double kOffCores = 0.25;
constexpr int kQuietWindows = 5;

Mode mode_from_env() {
  // A user who set the waiting policy chose how threads wait.
  if (std::getenv("OMP_WAIT_POLICY") != nullptr || std::getenv("GOMP_SPINCOUNT") != nullptr) return Mode::kOff;
  const char* v = std::getenv("COMPRESS_SPIN_THROTTLE");
  if (v == nullptr || *v == '\0' || std::strcmp(v, "auto") == 0) return Mode::kAuto;
  if (std::strcmp(v, "on") == 0) return Mode::kOn;
  if (std::strcmp(v, "off") == 0) return Mode::kOff;
  log_warning("COMPRESS_SPIN_THROTTLE='{}' is not auto, on or off; using auto", v);
  return Mode::kAuto;
}

class SpinThrottle {
 public:
  static SpinThrottle& instance() {
    static SpinThrottle* throttle = new SpinThrottle();  // never destroyed: a parked thread may outlive main
    return *throttle;
  }

  void update() {
    if (mode_ == Mode::kOff) return;
    std::unique_lock<std::mutex> lock(mutex_, std::try_to_lock);
    if (!lock.owns_lock()) return;  // another thread is sampling
    if (mode_ == Mode::kOn) {
      set(lock, true);
      return;
    }
    const auto now = std::chrono::steady_clock::now();
    if (last_.ok && std::chrono::duration<double>(now - last_.at).count() < kMinLoadWindowS) return;
    const CpuSample sample = sample_cpu();
    const double others = others_cores(last_, sample);
    last_ = sample;
    if (others < 0) return;
    if (others > kOnCores) {
      quiet_windows_ = 0;
      set(lock, true);
    } else if (others < kOffCores && on_ && ++quiet_windows_ >= kQuietWindows) {
      quiet_windows_ = 0;
      set(lock, false);
    }
  }

  bool on() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return on_;
  }

 private:
  SpinThrottle() : mode_(mode_from_env()) {}

  void set(std::unique_lock<std::mutex>& lock, bool on) {
    if (on == on_) return;
    on_ = on;
    log_debug("onednn: {} OpenMP spin-waits (other processes are {} the cores)", on ? "short" : "normal",
              on ? "using" : "no longer using");
    if (on) {
      // Waits until the last pool has gone (a quick off/on must not stack pools).
      parked_cv_.wait(lock, [&] { return !parked_; });
      parked_ = true;
      std::thread([this] { park(); }).detach();
    }
    parked_cv_.notify_all();
  }

  // Holds an OpenMP pool of cores + 1 sleeping threads until turned off.
  void park() {
    const int threads = omp_get_num_procs() + 1;
#pragma omp parallel num_threads(threads)
    { (void)omp_get_thread_num(); }
    std::unique_lock<std::mutex> lock(mutex_);
    parked_cv_.wait(lock, [&] { return !on_; });
    parked_ = false;
    parked_cv_.notify_all();
    // Returning ends the thread; libgomp frees its pool in the thread's key destructor.
  }

  const Mode mode_;
  mutable std::mutex mutex_;
  std::condition_variable parked_cv_;
  bool on_ = false;
  bool parked_ = false;
  int quiet_windows_ = 0;
  CpuSample last_;
};

}  // namespace

void update_spin_throttle() { SpinThrottle::instance().update(); }
bool spin_throttled() { return SpinThrottle::instance().on(); }

}  // namespace compress::runtime::onednn

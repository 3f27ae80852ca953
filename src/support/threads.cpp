#include "compress/support/threads.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <thread>

namespace compress {
namespace {
std::atomic<int> g_threads{0};
}  // namespace

int default_num_threads() {
  if (const char* env = std::getenv("COMPRESS_NUM_THREADS")) {
    const int n = std::atoi(env);
    if (n > 0) return std::min(n, kMaxThreads);
  }
  const unsigned hw = std::thread::hardware_concurrency();
  return hw == 0 ? 1 : static_cast<int>(std::min<unsigned>(hw, kMaxThreads));
}

void set_num_threads(int n) { g_threads.store(n > 0 ? std::min(n, kMaxThreads) : 0); }

int num_threads() {
  const int n = g_threads.load();
  return n > 0 ? n : default_num_threads();
}

}  // namespace compress

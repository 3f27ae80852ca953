// Inline part of threads.h (parallel_for template).
#pragma once

#include <algorithm>
#include <thread>
#include <vector>

namespace compress {

template <typename Fn>
void parallel_for(long n, Fn&& fn) {
  if (n <= 0) return;
  const long workers = std::min<long>(num_threads(), n);
  if (workers <= 1 || n < 2) {
    fn(0L, n);
    return;
  }
  const long chunk = (n + workers - 1) / workers;
  std::vector<std::thread> threads;
  threads.reserve(static_cast<size_t>(workers - 1));
  for (long w = 1; w < workers; ++w) {
    const long begin = w * chunk;
    const long end = std::min(n, begin + chunk);
    if (begin >= end) break;
    threads.emplace_back([&fn, begin, end] { fn(begin, end); });
  }
  fn(0L, std::min(n, chunk));
  for (auto& t : threads) t.join();
}

}  // namespace compress

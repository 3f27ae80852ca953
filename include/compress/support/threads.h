// Process-wide thread count for compute (Eigen, OpenMP, oneDNN, LibTorch).
#pragma once

namespace compress {

// The most compute threads compress uses or hands to OpenMP/oneDNN/LibTorch.
// libgomp crashes (SIGSEGV) or fails to create teams of tens of thousands
// of threads; no machine compress runs on has more cores than this.
inline constexpr int kMaxThreads = 1024;

// Hardware concurrency (at most kMaxThreads), or COMPRESS_NUM_THREADS when
// set to a count in [1, kMaxThreads].
int default_num_threads();
// Sets the thread count used by compress kernels and the libraries it drives.
// n <= 0 restores the default; n > kMaxThreads is capped (callers that take a
// count from a user reject it first, naming the limit).
void set_num_threads(int n);
int num_threads();

// Runs fn(begin, end) over [0, n) split into num_threads() contiguous chunks.
// Chunk boundaries depend only on n and the thread count, and each index is
// handled by exactly one call, so per-index results do not depend on it.
template <typename Fn>
void parallel_for(long n, Fn&& fn);

}  // namespace compress

#include "compress/support/threads_impl.h"

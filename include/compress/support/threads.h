// Process-wide thread count for compute (Eigen, OpenMP, oneDNN, LibTorch).
#pragma once

namespace compress {

// Hardware concurrency, or COMPRESS_NUM_THREADS when set.
int default_num_threads();
// Sets the thread count used by compress kernels and the libraries it drives.
// n <= 0 restores the default.
void set_num_threads(int n);
int num_threads();

// Runs fn(begin, end) over [0, n) split into num_threads() contiguous chunks.
// Chunk boundaries depend only on n and the thread count, and each index is
// handled by exactly one call, so per-index results do not depend on it.
template <typename Fn>
void parallel_for(long n, Fn&& fn);

}  // namespace compress

#include "compress/support/threads_impl.h"

// Atomic file replacement: temp file in the same folder, fsync, rename.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "compress/support/status.h"

namespace compress::io {

// Writes `bytes` to `path` so that readers see either the old file or the
// complete new one: a failure at any step removes the temp file and leaves
// the old file untouched.
Status write_file_atomically(const std::string& path, std::string_view bytes);

// Test hook: called before each chunk is written with the bytes written so
// far; returning a non-OK Status simulates a failure (disk full, crash).
using AtomicWriteFaultHook = std::function<Status(size_t bytes_written)>;
void set_atomic_write_fault_hook_for_testing(AtomicWriteFaultHook hook);

}  // namespace compress::io

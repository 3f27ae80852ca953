// Liveness-based placement of activation buffers in one arena (buffers whose lifetimes do not overlap share bytes).
#pragma once

#include <cstddef>
#include <vector>

namespace compress::runtime::onednn {

struct BufferLifetime {
  size_t bytes = 0;
  int first = 0;  // first step that writes or reads it
  int last = 0;   // last step that reads it (inclusive)
};

struct ArenaLayout {
  std::vector<size_t> offsets;  // one per buffer, aligned
  size_t total_bytes = 0;
};

// Greedy by size: the largest buffers are placed first, each at the lowest
// aligned offset that does not overlap a placed buffer whose lifetime
// intersects its own. Deterministic for a given input.
ArenaLayout plan_arena(const std::vector<BufferLifetime>& buffers, size_t alignment = 64);

}  // namespace compress::runtime::onednn

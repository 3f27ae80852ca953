// Arena placement: greedy by size over lifetime intervals.
#include "memory_planner.h"

#include <algorithm>
#include <numeric>

namespace compress::runtime::onednn {

ArenaLayout plan_arena(const std::vector<BufferLifetime>& buffers, size_t alignment) {
  ArenaLayout layout;
  layout.offsets.assign(buffers.size(), 0);
  std::vector<size_t> order(buffers.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return buffers[a].bytes > buffers[b].bytes; });
  auto align = [alignment](size_t n) { return (n + alignment - 1) / alignment * alignment; };

  std::vector<size_t> placed;
  std::vector<std::pair<size_t, size_t>> busy;  // [begin, end) of conflicting placed buffers
  for (size_t b : order) {
    const BufferLifetime& me = buffers[b];
    busy.clear();
    for (size_t p : placed) {
      const BufferLifetime& other = buffers[p];
      if (other.last < me.first || me.last < other.first) continue;
      busy.emplace_back(layout.offsets[p], layout.offsets[p] + align(other.bytes));
    }
    std::sort(busy.begin(), busy.end());
    size_t offset = 0;
    const size_t need = align(me.bytes);
    for (const auto& [begin, end] : busy) {
      if (offset + need <= begin) break;
      offset = std::max(offset, end);
    }
    layout.offsets[b] = offset;
    layout.total_bytes = std::max(layout.total_bytes, offset + need);
    placed.push_back(b);
  }
  return layout;
}

}  // namespace compress::runtime::onednn

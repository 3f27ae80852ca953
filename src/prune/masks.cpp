// Exact, deterministic pruning masks from scores (Note [Exact and deterministic masks]).
#include "compress/prune/masks.h"

#include <algorithm>
#include <numeric>

#include "compress/prune/schedule.h"

namespace compress::prune {
namespace {

// Marks the k lowest of scores[begin, begin+len) (by (prior first, score,
// index)) in mask[begin, ...). `order` is scratch.
void mark_lowest(const std::vector<float>& scores, const std::vector<uint8_t>* prior, int64_t begin, int64_t len,
                 int64_t k, std::vector<int64_t>& order, std::vector<uint8_t>& mask) {
  k = std::clamp<int64_t>(k, 0, len);
  if (k == 0) return;
  order.resize(static_cast<size_t>(len));
  std::iota(order.begin(), order.end(), begin);
  auto less = [&](int64_t a, int64_t b) {
    if (prior != nullptr) {
      const bool pa = (*prior)[static_cast<size_t>(a)] != 0, pb = (*prior)[static_cast<size_t>(b)] != 0;
      if (pa != pb) return pa;
    }
    const float sa = scores[static_cast<size_t>(a)], sb = scores[static_cast<size_t>(b)];
    if (sa != sb) return sa < sb;
    return a < b;
  };
  if (k < len) std::nth_element(order.begin(), order.begin() + (k - 1), order.end(), less);
  for (int64_t i = 0; i < k; ++i) mask[static_cast<size_t>(order[static_cast<size_t>(i)])] = 1;
}

}  // namespace

std::vector<uint8_t> lowest_k(const std::vector<float>& scores, int64_t k, const std::vector<uint8_t>* prior) {
  std::vector<uint8_t> mask(scores.size(), 0);
  std::vector<int64_t> order;
  mark_lowest(scores, prior, 0, static_cast<int64_t>(scores.size()), k, order, mask);
  return mask;
}

std::vector<uint8_t> lowest_per_row(const std::vector<float>& scores, int64_t rows, int64_t cols, double ratio,
                                    const std::vector<uint8_t>* prior) {
  std::vector<uint8_t> mask(scores.size(), 0);
  std::vector<int64_t> order;
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t k = pruned_count(ratio, (r + 1) * cols) - pruned_count(ratio, r * cols);
    mark_lowest(scores, prior, r * cols, cols, k, order, mask);
  }
  return mask;
}

std::vector<uint8_t> nm_mask(const std::vector<float>& scores, int64_t rows, int64_t cols, int64_t n, int64_t m) {
  std::vector<uint8_t> mask(scores.size(), 0);
  std::vector<int64_t> order;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c + m <= cols; c += m) mark_lowest(scores, nullptr, r * cols + c, m, m - n, order, mask);
  }
  return mask;
}

bool satisfies_nm(const float* values, int64_t rows, int64_t cols, int64_t n, int64_t m) {
  if (m <= 0 || cols % m != 0) return false;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; c += m) {
      int64_t nonzero = 0;
      for (int64_t j = 0; j < m; ++j) nonzero += values[r * cols + c + j] != 0.0f ? 1 : 0;
      if (nonzero > n) return false;
    }
  }
  return true;
}

}  // namespace compress::prune

// Sparsity schedules and a plain magnitude prune of a float buffer.
#include "compress/prune/schedule.h"

#include <algorithm>
#include <cmath>

#include "compress/prune/masks.h"

namespace compress::prune {

double cubic_sparsity(double initial, double final_sparsity, int64_t step, int64_t total_steps) {
  if (total_steps <= 0) return final_sparsity;
  const double t = static_cast<double>(std::clamp<int64_t>(step, 0, total_steps)) / static_cast<double>(total_steps);
  const double left = 1.0 - t;
  return final_sparsity + (initial - final_sparsity) * left * left * left;
}

std::vector<double> iterative_sparsities(double final_sparsity, int64_t steps) {
  std::vector<double> out;
  if (steps < 1) steps = 1;
  for (int64_t s = 1; s <= steps; ++s) out.push_back(cubic_sparsity(0.0, final_sparsity, s, steps));
  out.back() = final_sparsity;  // no rounding drift on the last step
  return out;
}

int64_t pruned_count(double ratio, int64_t count) {
  if (!(ratio > 0.0) || count <= 0) return 0;
  if (ratio >= 1.0) return count;
  return std::min<int64_t>(count, std::llround(ratio * static_cast<double>(count)));
}

int64_t magnitude_prune_in_place(float* data, int64_t count, double ratio) {
  if (!(ratio >= 0.0 && ratio <= 1.0) || count < 0) return -1;
  std::vector<float> scores(static_cast<size_t>(count));
  std::vector<uint8_t> prior(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) {
    if (!std::isfinite(data[i])) return -1;
    scores[static_cast<size_t>(i)] = std::fabs(data[i]);
    prior[static_cast<size_t>(i)] = data[i] == 0.0f ? 1 : 0;
  }
  const std::vector<uint8_t> mask = lowest_k(scores, pruned_count(ratio, count), &prior);
  int64_t zeroed = 0;
  for (int64_t i = 0; i < count; ++i) {
    if (mask[static_cast<size_t>(i)] != 0) {
      data[i] = 0.0f;
      ++zeroed;
    }
  }
  return zeroed;
}

}  // namespace compress::prune

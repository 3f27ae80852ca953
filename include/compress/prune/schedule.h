// Sparsity schedules (gradual cubic, iterative steps) and a plain magnitude prune of a float buffer.
#pragma once

#include <cstdint>
#include <vector>

namespace compress::prune {

// Note [Gradual pruning schedule]
// Zhu & Gupta, "To prune, or not to prune" (2017): the sparsity at step t of
// T is s_t = s_f + (s_i - s_f) * (1 - t/T)^3. It prunes fast while the
// network still has redundant weights and slowly near the target. t is
// clamped to [0, T]; T <= 0 means "already at the end" (s_f).
double cubic_sparsity(double initial, double final_sparsity, int64_t step, int64_t total_steps);

// The per-step targets of an iterative prune to `final_sparsity` in `steps`
// one-shot steps (cubic schedule from 0): steps values, the last one exactly
// final_sparsity. Fine-tuning, if any, goes between the steps.
std::vector<double> iterative_sparsities(double final_sparsity, int64_t steps);

// How many of `count` weights a ratio prunes: round(ratio * count), so the
// reached sparsity is as close to the ratio as whole weights allow.
int64_t pruned_count(double ratio, int64_t count);

// Zeroes the round(ratio * count) smallest-magnitude entries of `data`
// (ties: the lower index is pruned first). Entries that are already zero
// count as pruned first, so repeated calls with a rising ratio only ever add
// zeros (what a training loop re-pruning at every step of the cubic schedule
// needs). Returns the number of zeros written, or -1 when `data` holds a
// NaN/Inf or ratio is outside [0, 1] (nothing is changed then).
int64_t magnitude_prune_in_place(float* data, int64_t count, double ratio);

}  // namespace compress::prune

// Pruning criteria on one layer's canonical weight matrix: magnitude, Wanda, SparseGPT.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "compress/prune/activation_stats.h"
#include "compress/prune/prunable_layers.h"
#include "compress/support/status.h"

namespace compress::prune {

enum class Criterion { kMagnitude, kWanda, kSparseGpt };
Expected<Criterion> parse_criterion(const std::string& name);
const char* criterion_name(Criterion c);
inline bool needs_calibration(Criterion c) { return c != Criterion::kMagnitude; }

// What to reach in one layer: an unstructured ratio, or N:M when n > 0.
// `count` >= 0 overrides the ratio with an exact number of weights (a conv
// group's share of its layer's total).
struct PruneTarget {
  double ratio = 0.0;
  int64_t n = 0, m = 0;
  int64_t count = -1;
  bool is_nm() const { return n > 0; }
};

// Scores (higher = more important) of a [rows, cols] canonical matrix.
// Magnitude: |W_ij|. Wanda: |W_ij| * ||X_j||_2, the norm taken from the
// row's group (Note [Layer input statistics]).
std::vector<float> magnitude_scores(const std::vector<float>& w);
std::vector<float> wanda_scores(const std::vector<float>& w, int64_t rows, int64_t cols,
                                const LayerInputStats& stats);

// Zeroes the weights of `w` the mask selects. Unstructured magnitude prunes
// the layer's k smallest; Wanda compares within each output row (the Wanda
// paper's comparison group). Returns the number of weights pruned.
int64_t apply_mask(std::vector<float>& w, const std::vector<uint8_t>& mask);

struct SparseGptOptions {
  double damp = 0.01;      // fraction of the mean Hessian diagonal added to it
  int64_t block_size = 128;  // columns per lazy-update block
};

// Note [SparseGPT]
// Frantar & Alistarh, "SparseGPT: Massive Language Models Can Be Accurately
// Pruned in One-Shot" (2023), Algorithm 1. With H = X^T X + damp*I and U the
// upper Cholesky factor of H^-1, columns are visited left to right: inside a
// block of B columns the mask is chosen by w^2 / U_jj^2 (the OBS saliency),
// each pruned weight's error is spread over the not yet visited columns of
// its row (w -= err * U_j,j:), and after a block the accumulated errors update
// all later columns at once. For N:M the mask of each group of m columns is
// chosen when the loop reaches it, by the same saliency.
// Exact counts (Note [Exact and deterministic masks]): of the K weights to
// prune, block b [start, end) prunes round(K*end/cols) - round(K*start/cols).
// Columns whose input is always zero (H_jj = 0) cost nothing to prune and
// are pruned first, like weights that are already zero.
// `w` is [rows, cols] (the rows of one conv group), `hessian` [cols, cols].
Status sparsegpt_prune(std::vector<float>& w, int64_t rows, int64_t cols, const double* hessian,
                       const PruneTarget& target, const SparseGptOptions& options);

}  // namespace compress::prune

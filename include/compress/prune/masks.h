// Choosing which weights to prune from their scores: exact counts, deterministic ties, N:M groups.
#pragma once

#include <cstdint>
#include <vector>

namespace compress::prune {

// Note [Exact and deterministic masks]
// A mask prunes exactly the number of weights its target asks for: the k
// lowest scores, ties broken by the lower index (so equal weights never make
// the count depend on the sort). Row-wise selection spreads the rounding
// over the rows (row r prunes round(ratio*cols*(r+1)) - round(ratio*cols*r))
// so the layer total is still exactly round(ratio * rows * cols).
// Scores are finite and >= 0; a weight that is already pruned (`prior`) is
// chosen before any other, so a rising target only adds zeros.
// A mask entry of 1 means "prune".

// The k lowest of `scores` (k is clamped to scores.size()).
std::vector<uint8_t> lowest_k(const std::vector<float>& scores, int64_t k,
                              const std::vector<uint8_t>* prior = nullptr);

// Per-row selection of a [rows, cols] score matrix at `ratio`.
std::vector<uint8_t> lowest_per_row(const std::vector<float>& scores, int64_t rows, int64_t cols, double ratio,
                                    const std::vector<uint8_t>* prior = nullptr);

// N:M along each row: in every run of m consecutive columns keep the n
// highest scores (prune m - n). cols % m == 0.
std::vector<uint8_t> nm_mask(const std::vector<float>& scores, int64_t rows, int64_t cols, int64_t n, int64_t m);

// Whether every group of m consecutive columns of a [rows, cols] matrix has
// at most n nonzeros (the property N:M hardware relies on).
bool satisfies_nm(const float* values, int64_t rows, int64_t cols, int64_t n, int64_t m);

}  // namespace compress::prune

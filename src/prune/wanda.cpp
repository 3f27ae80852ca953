// Wanda (Sun et al., "A Simple and Effective Pruning Approach for Large Language Models", 2023):
// score |W_ij| * ||X_j||_2, so a small weight on a large input is kept.
#include <cmath>

#include "compress/prune/criteria.h"

namespace compress::prune {

std::vector<float> wanda_scores(const std::vector<float>& w, int64_t rows, int64_t cols,
                                const LayerInputStats& stats) {
  std::vector<float> s(w.size());
  const int64_t rows_per_group = rows / stats.groups;
  for (int64_t r = 0; r < rows; ++r) {
    const double* norms = stats.sq_norms.data() + (r / rows_per_group) * cols;
    for (int64_t j = 0; j < cols; ++j) {
      const size_t i = static_cast<size_t>(r * cols + j);
      s[i] = static_cast<float>(std::fabs(static_cast<double>(w[i])) * std::sqrt(norms[j]));
    }
  }
  return s;
}

}  // namespace compress::prune

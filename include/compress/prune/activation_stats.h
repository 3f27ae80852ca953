// Input-activation statistics of prunable layers over calibration data (for Wanda and SparseGPT).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "compress/eval/dataset.h"
#include "compress/ir/graph.h"
#include "compress/prune/prunable_layers.h"

namespace compress::prune {

// Note [Layer input statistics]
// Both criteria look at X, the matrix whose rows are the vectors a layer's
// weight rows are multiplied with: the input rows of linear / matmul, the
// im2col patches of conv2d (column j = (c, ky, kx), the canonical column
// order of Note [Canonical weight view]). A grouped conv has one X per group.
//  - Wanda needs ||X_j||_2 per column: sum of squares, `sq_norms`.
//  - SparseGPT needs the Hessian of the layer-wise squared error, H = X^T X.
// Both are sums over all rows of all calibration samples (doubles, so a large
// row count does not lose the small terms). The graph runs on a backend with
// the layer inputs as extra outputs, as quant::calibrate does.
struct LayerInputStats {
  int64_t groups = 1;
  int64_t cols = 0;
  int64_t rows_seen = 0;          // rows of X per group
  std::vector<double> sq_norms;   // [groups, cols]
  std::vector<double> hessian;    // [groups, cols, cols] (empty unless asked)
};

struct ActivationStatsOptions {
  int64_t samples = 128;
  int64_t batch = 32;
  std::string backend = "reference";
  bool hessian = false;
  bool progress = false;
  std::string label = "collecting activations";  // the progress bar's title
};

// Statistics for each layer (same order). The graph is not changed.
Expected<std::vector<LayerInputStats>> collect_input_stats(const ir::Graph& graph,
                                                           const std::vector<PrunableLayer>& layers,
                                                           const eval::DataSource& data,
                                                           const ActivationStatsOptions& options);

}  // namespace compress::prune

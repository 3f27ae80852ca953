// Internal: the loop prune.magnitude and prune.nm share (select, score, mask, store, report).
#pragma once

#include <string>
#include <vector>

#include "compress/ir/sparse_layout.h"
#include "compress/pass/pass.h"
#include "compress/prune/criteria.h"
#include "compress/prune/magnitude_pass.h"
#include "compress/prune/prunable_layers.h"

namespace compress::prune::detail {

struct PruneJob {
  std::string pass_name;
  Criterion criterion = Criterion::kMagnitude;
  bool global = false;        // one magnitude threshold over the non-overridden layers
  int64_t n = 0, m = 0;       // N:M when n > 0
  ir::SparseFormat format = ir::SparseFormat::kCsr;
  int64_t steps = 1;
  bool row_comparison = false;  // unstructured, scope layer: each row loses the same share
  CommonPruneOptions common;
};

// Prunes `layers` (from select_layers) in place. Checks everything that can
// fail on user input (calibration data present, finite weights) before the
// first weight changes.
Expected<pass::PassResult> prune_layers(ir::Graph& graph, const std::vector<SelectedLayer>& layers,
                                        const PruneJob& job, pass::PassContext& context);

}  // namespace compress::prune::detail

// prune.magnitude: unstructured pruning to a target sparsity (magnitude, Wanda or SparseGPT criterion).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "compress/pass/pass.h"
#include "compress/pass/registry.h"

namespace compress::prune {

// Options both prune.magnitude and prune.nm read (Note [Pass options]).
struct CommonPruneOptions {
  std::string criterion = "magnitude";  // magnitude | wanda | sparsegpt
  std::vector<ir::OpKind> ops = {ir::OpKind::conv2d, ir::OpKind::linear, ir::OpKind::matmul};
  std::vector<std::string> exclude;     // node-name patterns left dense
  int64_t min_params = 0;               // smaller layers are left dense
  // Calibration (wanda, sparsegpt): the first `samples` of PassContext::calibration.
  int64_t samples = 128;
  int64_t batch = 32;
  std::string calibration_backend = "reference";
  double damp = 0.01;        // sparsegpt: Hessian damping, fraction of the mean diagonal
  int64_t block_size = 128;  // sparsegpt: lazy-update block width
};

// Wanda and SparseGPT read calibration data; magnitude reads none.
pass::PassNeeds common_prune_needs(const CommonPruneOptions& options);

// Note [Unstructured pruning]
// Weights keep their logical shape; pruned entries become zeros and the
// weight gets a SparseLayout (`format`: csr for deployment, mask while
// training). Each selected layer reaches exactly round(ratio * params) pruned
// weights (Note [Exact and deterministic masks]); scope: global ranks the
// magnitudes of all selected layers together instead (one threshold), with
// the overridden layers still at their own ratio. `steps` > 1 prunes
// iteratively along the cubic schedule (Note [Gradual pruning schedule]),
// re-scoring (and, for wanda/sparsegpt, re-calibrating) after each step.
// Weights that are already zero are always pruned first, so a recipe that
// alternates prune.magnitude stages of rising ratio with fine-tuning stages
// (iterative pruning with fine-tuning between the steps) never revives a
// pruned weight; a training loop does the same per step with
// cubic_sparsity() and magnitude_prune_in_place() (schedule.h).
class MagnitudePrunePass : public pass::Pass {
 public:
  struct Options {
    double ratio = 0.5;                // target sparsity in [0, 1)
    std::string scope = "layer";       // layer | global
    std::string format = "csr";        // csr | mask
    int64_t steps = 1;
    std::vector<std::pair<std::string, double>> layers;  // per-layer ratio overrides by pattern
    // Which weights compete for pruning (scope layer, magnitude and wanda):
    // "layer" (all of a layer's weights) or "row" (each output channel
    // loses the same share). auto: layer for magnitude, row for wanda (as
    // in the Wanda paper).
    std::string comparison = "auto";
    CommonPruneOptions common;
  };
  static Expected<Options> parse_options(const pass::PassOptions& options);
  MagnitudePrunePass() = default;
  explicit MagnitudePrunePass(Options options) : options_(std::move(options)) {}
  std::string name() const override { return "prune.magnitude"; }
  Expected<pass::PassResult> run(ir::Graph& graph, pass::PassContext& context) override;
  pass::PassNeeds needs() const override { return common_prune_needs(options_.common); }

 private:
  Options options_;
};

// Reads the CommonPruneOptions keys (criterion, ops, exclude, min_params,
// samples, batch, calibration_backend, damp, block_size).
Expected<CommonPruneOptions> parse_common_prune_options(const pass::PassOptions& options);

}  // namespace compress::prune

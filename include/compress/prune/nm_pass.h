// prune.nm: N:M semi-structured pruning (2:4, 4:8) along the input dimension.
#pragma once

#include <cstdint>
#include <string>
#include <utility>

#include "compress/pass/pass.h"
#include "compress/pass/registry.h"
#include "compress/prune/magnitude_pass.h"
#include "compress/support/status.h"

namespace compress::prune {

// Note [N:M pruning]
// In every run of m consecutive input columns of the canonical matrix (Note
// [Canonical weight view]) at most n weights stay nonzero, chosen by the
// criterion (magnitude, wanda score, or SparseGPT's saliency with its weight
// updates). A layer whose input width is not a multiple of m cannot hold the
// pattern and stays dense (a warning names it, its stats say skipped). The
// weight is stored in the N:M layout (`format: nm`), or as mask / csr; a
// matmul weight (stored [in, out], so its groups run down the columns of the
// stored matrix) is stored as csr when nm is asked for.
class NMPrunePass : public pass::Pass {
 public:
  struct Options {
    int64_t n = 2, m = 4;
    std::string format = "nm";  // nm | mask | csr
    CommonPruneOptions common;
  };
  static Expected<Options> parse_options(const pass::PassOptions& options);
  NMPrunePass() = default;
  explicit NMPrunePass(Options options) : options_(std::move(options)) {}
  std::string name() const override { return "prune.nm"; }
  Expected<pass::PassResult> run(ir::Graph& graph, pass::PassContext& context) override;
  pass::PassNeeds needs() const override { return common_prune_needs(options_.common); }

 private:
  Options options_;
};

// "2:4" -> (2, 4). Needs 0 < n < m <= 64; anything else is an error that
// names the pattern.
Expected<std::pair<int64_t, int64_t>> parse_nm_pattern(const std::string& pattern);

}  // namespace compress::prune

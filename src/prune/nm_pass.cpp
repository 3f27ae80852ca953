// prune.nm: N:M semi-structured pruning (Note [N:M pruning]).
#include "compress/prune/nm_pass.h"

#include <cctype>

#include "compress/prune/criteria.h"
#include "compress/prune/prunable_layers.h"
#include "layer_pruning.h"

namespace compress::prune {

Expected<std::pair<int64_t, int64_t>> parse_nm_pattern(const std::string& pattern) {
  const size_t colon = pattern.find(':');
  auto digits = [](const std::string& s) {
    if (s.empty() || s.size() > 3) return false;
    for (char c : s) {
      if (!std::isdigit(static_cast<unsigned char>(c))) return false;
    }
    return true;
  };
  if (colon == std::string::npos || !digits(pattern.substr(0, colon)) || !digits(pattern.substr(colon + 1))) {
    return invalid_argument("N:M pattern '{}' is not of the form N:M (e.g. 2:4, 4:8)", pattern);
  }
  const int64_t n = std::stoll(pattern.substr(0, colon));
  const int64_t m = std::stoll(pattern.substr(colon + 1));
  if (!(n > 0 && n < m && m <= 64)) {
    return invalid_argument("N:M pattern '{}': needs 0 < N < M <= 64 (keep N of every M weights), e.g. 2:4", pattern);
  }
  return std::make_pair(n, m);
}

Expected<NMPrunePass::Options> NMPrunePass::parse_options(const pass::PassOptions& options) {
  Options o;
  COMPRESS_ASSIGN_OR_RETURN(std::string pattern, options.string("pattern", "2:4"));
  Expected<std::pair<int64_t, int64_t>> nm = parse_nm_pattern(pattern);
  if (!nm.has_value()) return nm.status().with_context(options.where("pattern"));
  o.n = nm->first;
  o.m = nm->second;
  COMPRESS_ASSIGN_OR_RETURN(o.format, options.string("format", o.format, {"nm", "mask", "csr"}));
  COMPRESS_ASSIGN_OR_RETURN(o.common, parse_common_prune_options(options));
  return o;
}

Expected<pass::PassResult> NMPrunePass::run(ir::Graph& graph, pass::PassContext& context) {
  if (!(options_.n > 0 && options_.n < options_.m && options_.m <= 64)) {
    return invalid_argument("prune.nm: pattern {}:{} needs 0 < N < M <= 64", options_.n, options_.m);
  }
  COMPRESS_ASSIGN_OR_RETURN(Criterion criterion, parse_criterion(options_.common.criterion));
  LayerSelectionOptions sel;
  sel.ops = options_.common.ops;
  sel.min_params = options_.common.min_params;
  sel.exclude = options_.common.exclude;
  sel.pass_name = name();
  COMPRESS_ASSIGN_OR_RETURN(std::vector<SelectedLayer> layers, select_layers(graph, sel));

  detail::PruneJob job;
  job.pass_name = name();
  job.criterion = criterion;
  job.n = options_.n;
  job.m = options_.m;
  job.format = options_.format == "nm"     ? ir::SparseFormat::kNM
               : options_.format == "mask" ? ir::SparseFormat::kMask
                                           : ir::SparseFormat::kCsr;
  job.common = options_.common;
  return detail::prune_layers(graph, layers, job, context);
}

}  // namespace compress::prune

// prune.magnitude: unstructured pruning (Note [Unstructured pruning]).
#include "compress/prune/magnitude_pass.h"

#include "compress/ir/op_schema.h"

#include <algorithm>

#include "compress/prune/criteria.h"
#include "compress/prune/prunable_layers.h"
#include "compress/runtime/backend.h"
#include "layer_pruning.h"

namespace compress::prune {

Expected<CommonPruneOptions> parse_common_prune_options(const pass::PassOptions& options) {
  CommonPruneOptions o;
  COMPRESS_ASSIGN_OR_RETURN(o.criterion,
                            options.string("criterion", o.criterion, {"magnitude", "wanda", "sparsegpt"}));
  COMPRESS_ASSIGN_OR_RETURN(std::vector<std::string> ops, options.string_list("ops"));
  if (!ops.empty()) {
    o.ops.clear();
    for (const std::string& op : ops) {
      const std::optional<ir::OpKind> kind = ir::op_kind_from_name(op);
      const ir::OpSchema* schema = kind ? &ir::op_schema(*kind) : nullptr;
      if (schema == nullptr || !schema->weighted.is_layer() || schema->weighted.quantized) {
        return invalid_argument("{}: unknown op '{}' (use conv2d, linear, matmul)", options.where("ops"), op);
      }
      o.ops.push_back(*kind);
    }
  }
  COMPRESS_ASSIGN_OR_RETURN(o.exclude, options.string_list("exclude"));
  COMPRESS_ASSIGN_OR_RETURN(o.min_params, options.integer("min_params", o.min_params, 0));
  COMPRESS_ASSIGN_OR_RETURN(o.samples, options.integer("samples", o.samples, 1, int64_t{1} << 24));
  COMPRESS_ASSIGN_OR_RETURN(o.batch, options.integer("batch", o.batch, 1, 1 << 16));
  COMPRESS_ASSIGN_OR_RETURN(o.calibration_backend,
                            options.string("calibration_backend", o.calibration_backend, runtime::available_backends()));
  COMPRESS_ASSIGN_OR_RETURN(o.damp, options.number("damp", o.damp, pass::Range{0.0, 1.0, true, false}));
  COMPRESS_ASSIGN_OR_RETURN(o.block_size, options.integer("block_size", o.block_size, 1, 1 << 16));
  return o;
}

pass::PassNeeds common_prune_needs(const CommonPruneOptions& options) {
  pass::PassNeeds needs;
  const Expected<Criterion> criterion = parse_criterion(options.criterion);
  needs.calibration = !criterion.has_value() || needs_calibration(*criterion);
  return needs;
}

Expected<MagnitudePrunePass::Options> MagnitudePrunePass::parse_options(const pass::PassOptions& options) {
  Options o;
  COMPRESS_ASSIGN_OR_RETURN(o.ratio, options.number("ratio", o.ratio, pass::Range::half_open(0.0, 1.0)));
  COMPRESS_ASSIGN_OR_RETURN(o.scope, options.string("scope", o.scope, {"layer", "global"}));
  COMPRESS_ASSIGN_OR_RETURN(o.format, options.string("format", o.format, {"csr", "mask"}));
  COMPRESS_ASSIGN_OR_RETURN(o.steps, options.integer("steps", o.steps, 1, 1000));
  COMPRESS_ASSIGN_OR_RETURN(o.layers, options.number_map("layers", pass::Range::half_open(0.0, 1.0)));
  COMPRESS_ASSIGN_OR_RETURN(o.comparison, options.string("comparison", o.comparison, {"auto", "layer", "row"}));
  COMPRESS_ASSIGN_OR_RETURN(o.common, parse_common_prune_options(options));
  if (o.comparison != "auto" && (o.scope == "global" || o.common.criterion == "sparsegpt")) {
    return invalid_argument("{}: comparison applies to scope layer with criterion magnitude or wanda "
                            "(sparsegpt chooses its mask per block)",
                            options.where("comparison"));
  }
  if (o.scope == "global" && o.common.criterion != "magnitude") {
    return invalid_argument("{}: scope 'global' ranks plain magnitudes across layers; criterion '{}' compares "
                            "within a layer (use scope: layer)",
                            options.where("scope"), o.common.criterion);
  }
  return o;
}

Expected<pass::PassResult> MagnitudePrunePass::run(ir::Graph& graph, pass::PassContext& context) {
  // Options may also come from C++ callers: check them again here.
  if (!(options_.ratio >= 0.0 && options_.ratio < 1.0)) {
    return invalid_argument("prune.magnitude: ratio must be in [0, 1), got {}", options_.ratio);
  }
  for (const auto& [pattern, ratio] : options_.layers) {
    if (!(ratio >= 0.0 && ratio < 1.0)) {
      return invalid_argument("prune.magnitude: ratio of layers '{}' must be in [0, 1), got {}", pattern, ratio);
    }
  }
  if (options_.scope != "layer" && options_.scope != "global") {
    return invalid_argument("prune.magnitude: unknown scope '{}' (use layer or global)", options_.scope);
  }
  COMPRESS_ASSIGN_OR_RETURN(Criterion criterion, parse_criterion(options_.common.criterion));
  if (options_.scope == "global" && criterion != Criterion::kMagnitude) {
    return invalid_argument("prune.magnitude: scope 'global' needs criterion 'magnitude'");
  }
  LayerSelectionOptions sel;
  sel.ops = options_.common.ops;
  sel.min_params = options_.common.min_params;
  sel.ratio = options_.ratio;
  sel.overrides = options_.layers;
  sel.exclude = options_.common.exclude;
  sel.pass_name = name();
  COMPRESS_ASSIGN_OR_RETURN(std::vector<SelectedLayer> layers, select_layers(graph, sel));

  detail::PruneJob job;
  job.pass_name = name();
  job.criterion = criterion;
  job.global = options_.scope == "global";
  job.format = options_.format == "mask" ? ir::SparseFormat::kMask : ir::SparseFormat::kCsr;
  job.steps = options_.steps;
  if (options_.comparison != "auto" && options_.comparison != "layer" && options_.comparison != "row") {
    return invalid_argument("prune.magnitude: unknown comparison '{}' (use auto, layer or row)", options_.comparison);
  }
  job.row_comparison = options_.comparison == "auto" ? criterion == Criterion::kWanda : options_.comparison == "row";
  job.common = options_.common;
  return detail::prune_layers(graph, layers, job, context);
}

}  // namespace compress::prune

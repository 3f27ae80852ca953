// JSON form of ModelStats (`ctk inspect --json`, and later the report writers).
#pragma once

#include <nlohmann/json.hpp>

#include "compress/analysis/model_stats.h"

namespace compress::analysis {

// Keys: name, num_nodes, num_params, params_by_dtype, weight_bytes, flops,
// macs, op_counts, uncounted_ops, inputs, outputs ([{name, dtype, shape}]) and
// layers ([{name, op, shape, output_dtype, weight, dtype, layout, quantized,
// sparsity, bits, params, flops, macs}]; weight fields are null for nodes
// without a constant input).
nlohmann::json model_stats_to_json(const ModelStats& stats);

}  // namespace compress::analysis

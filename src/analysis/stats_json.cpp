// JSON form of ModelStats (see stats_json.h).
#include "compress/analysis/stats_json.h"

namespace compress::analysis {
namespace {

nlohmann::json signatures(const std::vector<ValueSignature>& values) {
  nlohmann::json out = nlohmann::json::array();
  for (const ValueSignature& v : values) {
    out.push_back({{"name", v.name}, {"dtype", std::string(ir::dtype_name(v.dtype))}, {"shape", v.shape}});
  }
  return out;
}

nlohmann::json layer_json(const LayerStats& l) {
  nlohmann::json row = {
      {"name", l.name},
      {"op", l.op},
      {"shape", l.output_shape},
      {"output_dtype", std::string(ir::dtype_name(l.output_dtype))},
      {"params", l.params},
      {"flops", l.flops},
      {"macs", l.macs},
  };
  if (l.weight_dtype) {
    row["weight"] = l.weight_name;
    row["dtype"] = std::string(ir::dtype_name(*l.weight_dtype));
    row["layout"] = l.weight_layout;
    row["quantized"] = l.weight_quantized;
    row["sparsity"] = l.weight_sparsity;
    row["bits"] = l.bits_per_weight;
  } else {
    for (const char* key : {"weight", "dtype", "layout", "quantized", "sparsity", "bits"}) row[key] = nullptr;
  }
  return row;
}

}  // namespace

nlohmann::json model_stats_to_json(const ModelStats& stats) {
  nlohmann::json layers = nlohmann::json::array();
  for (const LayerStats& l : stats.layers) layers.push_back(layer_json(l));
  return {
      {"name", stats.name},
      {"num_nodes", stats.num_nodes},
      {"num_params", stats.num_params},
      {"params_by_dtype", stats.params_by_dtype},
      {"weight_bytes", stats.weight_bytes},
      {"flops", stats.flops},
      {"macs", stats.macs},
      {"op_counts", stats.op_counts},
      {"uncounted_ops", stats.uncounted_ops},
      {"inputs", signatures(stats.inputs)},
      {"outputs", signatures(stats.outputs)},
      {"layers", std::move(layers)},
  };
}

}  // namespace compress::analysis

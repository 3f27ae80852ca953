// The weighted-layer view: one decision, from the op table, for every pass and report.
#include "compress/analysis/weighted_layers.h"

#include <algorithm>

namespace compress::analysis {
namespace {

bool is_f32_constant(const ir::Value* v) {
  return v->is_constant() && v->dtype() == ir::DType::kF32 && !v->constant().is_quantized();
}

}  // namespace

std::optional<WeightedLayer> as_weighted_layer(const ir::Node& node, const WeightedLayerQuery& query) {
  const ir::OpSchema* schema = node.schema();
  if (schema == nullptr || !schema->weighted.is_layer()) return std::nullopt;
  if (!query.ops.empty() && std::find(query.ops.begin(), query.ops.end(), node.kind()) == query.ops.end()) {
    return std::nullopt;
  }
  const ir::WeightedLayerSpec& spec = schema->weighted;
  if (static_cast<int>(node.num_inputs()) <= spec.weight_input) return std::nullopt;
  ir::Value* weight = node.input(static_cast<size_t>(spec.weight_input));
  if (!weight->is_constant()) return std::nullopt;
  if (static_cast<int>(weight->shape().size()) != spec.weight_rank) return std::nullopt;
  if (query.f32_weight && !is_f32_constant(weight)) return std::nullopt;
  ir::Value* bias = nullptr;
  if (spec.bias_input >= 0 && static_cast<int>(node.num_inputs()) > spec.bias_input) {
    bias = node.input(static_cast<size_t>(spec.bias_input));
    if (query.constant_bias && !is_f32_constant(bias)) return std::nullopt;
  }
  if (query.f32_input && node.input(0)->dtype() != ir::DType::kF32) return std::nullopt;
  return WeightedLayer{const_cast<ir::Node*>(&node), weight, bias, spec};
}

std::vector<WeightedLayer> weighted_layers(const ir::Graph& graph, const WeightedLayerQuery& query) {
  std::vector<WeightedLayer> out;
  for (ir::Node* node : graph.nodes()) {
    if (auto layer = as_weighted_layer(*node, query)) out.push_back(*layer);
  }
  return out;
}

std::optional<WeightedLayer> layer_of_weight(const ir::Value& weight, const WeightedLayerQuery& query) {
  for (const ir::Use& use : weight.uses()) {
    const ir::OpSchema* schema = ir::find_op(use.user->op());
    if (schema == nullptr || static_cast<int>(use.input_index) != schema->weighted.weight_input) continue;
    if (auto layer = as_weighted_layer(*use.user, query)) return layer;
  }
  return std::nullopt;
}

bool is_weighted_op(const std::string& op) {
  const ir::OpSchema* schema = ir::find_op(op);
  return schema != nullptr && schema->weighted.is_layer();
}

}  // namespace compress::analysis

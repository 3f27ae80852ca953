// Weighted layers (conv2d, linear, matmul with a constant weight, and their quantized forms), found through the op table.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "compress/ir/graph.h"
#include "compress/ir/op_schema.h"

namespace compress::analysis {

// One layer with a constant weight. The op table's WeightedLayerSpec says
// which input is the weight and the bias, and the weight's output-channel
// axis; passes read the values through Tensor::dense_f32 and write them
// back with ir::store_like (Note [Writing back a weight]), so a sparse
// weight is seen dense.
struct WeightedLayer {
  ir::Node* node = nullptr;
  ir::Value* weight = nullptr;  // a constant
  ir::Value* bias = nullptr;    // the bias input when there is one, else null
  ir::WeightedLayerSpec spec;
  const std::string& name() const { return node->name(); }
  const std::string& op() const { return node->op(); }
  int64_t out_channels() const { return weight->shape()[static_cast<size_t>(spec.weight_out_axis)]; }
};

// Which weighted layers a caller wants.
struct WeightedLayerQuery {
  // Empty: every op the table marks as a weighted layer.
  std::vector<ir::OpKind> ops;
  // The weight is an f32 constant of the op's weight rank, not stored
  // quantized (a sparse one qualifies). False: any constant weight.
  bool f32_weight = true;
  // A bias input, when present, is an f32 constant too.
  bool constant_bias = true;
  // The data input (input 0) is f32.
  bool f32_input = false;
};

// `node` as a weighted layer under `query`, or nothing. (The view holds the
// graph's own node and value pointers, as Graph::nodes() hands them out.)
std::optional<WeightedLayer> as_weighted_layer(const ir::Node& node, const WeightedLayerQuery& query = {});
// Every weighted layer under `query`, in graph order.
std::vector<WeightedLayer> weighted_layers(const ir::Graph& graph, const WeightedLayerQuery& query = {});
// The layer whose weight input is `weight` (the first, when several share
// it), or nothing.
std::optional<WeightedLayer> layer_of_weight(const ir::Value& weight, const WeightedLayerQuery& query = {});

// True when the op table marks `op` as a weighted layer (whatever its inputs).
bool is_weighted_op(const std::string& op);

}  // namespace compress::analysis

// The op table: one entry per op with arity, attribute schema and type inference.
#pragma once

#include <string_view>
#include <vector>

#include "compress/ir/attributes.h"
#include "compress/ir/graph.h"

namespace compress::ir {

struct AttrSpec {
  std::string_view name;
  AttrKind kind;
  bool required;
  Attribute default_value;  // used when not required and absent
};

struct InferContext {
  std::string_view op;
  std::vector<const ValueType*> inputs;  // missing optional inputs are not present
  const AttributeMap& attrs;             // defaults already filled
  // Constant inputs' tensors (null for non-constants), e.g. a reshape target.
  std::vector<const Tensor*> constant_inputs;
};

using InferFn = Expected<std::vector<ValueType>> (*)(const InferContext&);

// Where a layer with a weight keeps it: what pruning, quantization,
// factorization and reports need to know about conv2d, linear, matmul and
// their quantized forms, without naming them (analysis/weighted_layers.h
// reads it). Ops that are not weighted layers have weight_input -1.
struct WeightedLayerSpec {
  int weight_input = -1;     // the weight's input index; -1: not a weighted layer
  int bias_input = -1;       // the optional bias's input index; -1: the op has none
  int weight_rank = 0;       // rank of the weight tensor
  int weight_out_axis = 0;   // the weight axis of the output channels (matmul: 1, W is [in, out])
  bool quantized = false;    // the weight is stored quantized (qconv2d, qlinear, qmatmul)
  bool is_layer() const { return weight_input >= 0; }
};

struct OpSchema {
  std::string_view name;
  int min_inputs;
  int max_inputs;  // -1: variadic
  std::vector<AttrSpec> attrs;
  InferFn infer;
  std::string_view summary;
  WeightedLayerSpec weighted = {};
};

// All ops of op set v1, in a fixed order.
const std::vector<OpSchema>& op_table();
const OpSchema* find_op(std::string_view name);
inline constexpr int kOpSetVersion = 1;

// Checks attribute names and kinds against the schema and fills defaults.
Status normalize_attributes(const OpSchema& schema, AttributeMap* attrs);
// Runs the schema's inference for a node as it stands (used by the verifier).
Expected<std::vector<ValueType>> infer_node_types(const Node& node);

}  // namespace compress::ir

// The op table: one entry per op with arity, attribute schema and type inference.
#pragma once

#include <string_view>
#include <vector>

#include "compress/ir/attributes.h"
#include "compress/ir/graph.h"
#include "compress/ir/op_kind.h"

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

// How analysis/model_stats.h counts an op's arithmetic (Note [FLOP conventions]
// there): a rule, and the FLOPs per element for the per-element rules.
enum class CostRule : uint8_t {
  kUncounted,         // not in the cost model: reported as uncounted, never guessed
  kFree,              // data movement only (reshape, concat, gather)
  kPerOutputElement,  // flops_per_element per output element
  kPerInputElement,   // flops_per_element per input-0 element (reductions)
  kPoolWindow,        // one per window tap per output element
  kConv,              // MACs per output element = weight elements / Cout
  kLinear,            // MACs per output element = in_features
  kMatmul,            // MACs per output element = K
  kAttention,         // two matmuls over the score matrix
};

struct CostSpec {
  CostRule rule = CostRule::kUncounted;
  int flops_per_element = 1;
};

// How channel indices flow from an op's inputs to its outputs, for the
// channel-group analysis that structured pruning uses (Note [Channel groups]).
enum class ChannelFlow : uint8_t {
  kBlocked,           // not traceable: every axis it touches is blocked, with the op named as the reason
  kElementwise,       // one input, same shape out: every axis of input 0 is the same axis of output 0
  kBroadcast,         // NumPy-broadcasting binary op: each input aligned to the right of the output
  kBatchAndChannel,   // NCHW window ops (pools): N and C flow through, H and W do not
  kLeadingAxes,       // normalizes over the last `normalized_ndim` axes (layer_norm, rms_norm): the
                      // leading axes flow through, the normalized ones and the parameters are blocked
  kOpSpecific,        // a rule of its own in src/analysis/channel_groups.cpp (conv, reshape, norms, ...)
};

struct OpSchema {
  std::string_view name;
  int min_inputs;
  int max_inputs;  // -1: variadic
  std::vector<AttrSpec> attrs;
  InferFn infer;
  std::string_view summary;
  WeightedLayerSpec weighted = {};
  CostSpec cost = {};
  ChannelFlow channel_flow = ChannelFlow::kBlocked;
  OpKind kind = OpKind::kUnknown;  // filled from the name when the table is built

  // Elementwise ops (one output element from the same-index input elements).
  bool elementwise() const {
    return channel_flow == ChannelFlow::kElementwise || channel_flow == ChannelFlow::kBroadcast;
  }
  OpSchema& with_cost(CostRule rule, int flops_per_element = 1) {
    cost = {rule, flops_per_element};
    return *this;
  }
  OpSchema& with_channel_flow(ChannelFlow flow) {
    channel_flow = flow;
    return *this;
  }
};

// All ops of op set v1, in a fixed order (OpKind order).
const std::vector<OpSchema>& op_table();
const OpSchema* find_op(std::string_view name);
const OpSchema& op_schema(OpKind kind);  // kind must not be kUnknown
inline constexpr int kOpSetVersion = 1;

// Checks attribute names and kinds against the schema and fills defaults.
Status normalize_attributes(const OpSchema& schema, AttributeMap* attrs);
// Runs the schema's inference for a node as it stands (used by the verifier).
Expected<std::vector<ValueType>> infer_node_types(const Node& node);

}  // namespace compress::ir

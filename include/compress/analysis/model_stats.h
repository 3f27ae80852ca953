// Model statistics: parameter counts, FLOPs/MACs per node, per-layer table rows.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "compress/ir/graph.h"

namespace compress::analysis {

// Note [FLOP conventions]
// Costs are computed from the static value types of the graph (the declared
// input shapes, batch included), so they describe one run on those shapes.
// A MAC is one multiply-accumulate; a FLOP is one arithmetic operation, so a
// MAC counts as 2 FLOPs. Quantized ops count their integer operations the
// same way as their float counterparts. Per op family:
//   conv2d, qconv2d    MACs = N*Cout*Hout*Wout * (Cin/groups)*kh*kw
//                      FLOPs = 2*MACs, + N*Cout*Hout*Wout when there is a bias
//   linear, qlinear    MACs = (output elements) * in_features
//                      FLOPs = 2*MACs, + output elements when there is a bias
//   matmul, qmatmul    MACs = (output elements) * K; FLOPs = 2*MACs
//   scaled_dot_product_attention
//                      QK^T and AV products: MACs = B*H*L*S*(E + Ev),
//                      FLOPs = 2*MACs (= 4*B*H*L*S*E when Ev = E); the softmax
//                      and scaling are not counted
//   elementwise        1 FLOP per output element (relu, gelu, sigmoid, clamp, qadd,
//                      add, mul, ...; transcendental functions are not weighted)
//   batch_norm         2 per element (inference form: x*a + b)
//   layer_norm         5 per element (mean, variance, normalize, scale, shift)
//   softmax            3 per element (exp, sum, divide)
//   max/avg pooling    (output elements) * kh*kw (one compare or add per tap)
//   adaptive pooling,  one per input element
//   reduce_mean
//   quantize, dequantize 1 per element; fake_quant 2 per element
//   data movement      0 (reshape, flatten, transpose, permute, concat,
//                      split, slice, embedding lookups)
// Unknown ops cost 0 and are listed in ModelStats::uncounted_ops. Counts
// saturate at INT64_MAX instead of overflowing.
struct NodeCost {
  int64_t flops = 0;
  int64_t macs = 0;
  bool counted = true;  // false for ops this table does not know
};
NodeCost node_cost(const ir::Node& node);

// One row of the per-layer table: one node of the graph.
struct LayerStats {
  std::string name;
  std::string op;
  ir::Shape output_shape;    // output 0
  ir::DType output_dtype = ir::DType::kF32;
  // The node's weight: its largest constant input (first on ties), e.g. a
  // conv's filter rather than its bias. Unset for nodes without constants.
  std::string weight_name;
  std::optional<ir::DType> weight_dtype;
  double weight_sparsity = 0.0;   // fraction of zeros in the logical weight
  double bits_per_weight = 0.0;   // see effective_bits_per_weight()
  std::string weight_layout;      // "dense", "csr", "nm", ... (sparse_format_name)
  bool weight_quantized = false;
  int64_t params = 0;             // elements of all constant inputs of the node
  int64_t flops = 0;
  int64_t macs = 0;
};

// A graph input or output as the report shows it.
struct ValueSignature {
  std::string name;
  ir::DType dtype = ir::DType::kF32;
  ir::Shape shape;
};

struct ModelStats {
  std::string name;
  std::vector<ValueSignature> inputs;
  std::vector<ValueSignature> outputs;
  int64_t num_nodes = 0;
  // Every constant, counted once (weights, biases, BN statistics, and also
  // small index/shape constants), by logical element count. Data passes keep
  // in the model (importance scores, observed ranges) are annotations, not
  // constants (Note [Annotations]), and not counted.
  int64_t num_params = 0;
  std::map<std::string, int64_t> params_by_dtype;  // dtype name -> elements
  // Bytes the constants occupy in storage: stored values plus sparse index
  // tensors (quant params' scales are not counted).
  int64_t weight_bytes = 0;
  int64_t flops = 0;
  int64_t macs = 0;
  std::map<std::string, int64_t> op_counts;
  std::vector<std::string> uncounted_ops;  // ops without a FLOP rule, sorted
  std::vector<LayerStats> layers;          // in graph (topological) order
};

// Bits each logical element of `weight` costs in storage: the dtype's bits for
// a dense tensor; for sparse storage (stored value bytes + index bytes) * 8 /
// numel, so a 90%-sparse CSR f32 weight reports well under 32.
double effective_bits_per_weight(const ir::Tensor& weight);
// Bytes of stored values plus sparse index tensors.
int64_t stored_bytes(const ir::Tensor& tensor);

ModelStats compute_model_stats(const ir::Graph& graph);

// compute_model_stats' num_params, flops and macs without its per-layer
// tables: for searches that measure many candidate graphs (prune.structured).
struct ModelCost {
  int64_t params = 0;
  int64_t flops = 0;
  int64_t macs = 0;
};
ModelCost compute_model_cost(const ir::Graph& graph);

}  // namespace compress::analysis

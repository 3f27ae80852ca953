// What the lowrank passes share: a method's factorization of one layer as a chain of layers, and the driver that
// applies them.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "compress/analysis/weighted_layers.h"
#include "compress/ir/attributes.h"
#include "compress/ir/op_kind.h"
#include "compress/ir/tensor.h"
#include "compress/lowrank/lowrank_passes.h"
#include "compress/prune/activation_stats.h"

namespace compress::lowrank::detail {

// One layer of a factorized chain; the last one takes the original bias.
struct ChainLayer {
  ir::OpKind op = ir::OpKind::linear;
  ir::Tensor weight;
  ir::AttributeMap attrs;
  std::string suffix;  // node name = original name + suffix
};

struct Factorization {
  std::vector<ChainLayer> chain;
  int64_t rank = 0;     // svd, spatial_svd; tucker2: rank_out
  int64_t rank_in = 0;  // tucker2
  double relative_error = 0;
  int iterations = 0;  // tucker2 HOOI / cp ALS sweeps
  double hosvd_error = 0;
  double output_error = -1;         // activation-aware: the error in the transformed space (whiten: on the inputs)
  bool whitening_fallback = false;  // whiten asked, X^T X not positive definite: plain SVD
};

// The geometry a method needs of a layer at the model's shapes.
struct LayerShape {
  ir::Shape input, output, weight;
  int64_t dense_macs() const;  // per batch element
};

// A method: whether it applies to a layer (else why not) and its
// factorization of the dense weight at the options' rank rule.
struct Method {
  std::string pass_name;
  std::string (*skip_reason)(const analysis::WeightedLayer& layer);
  // `inputs`: the layer's input statistics from the calibration data when
  // options.activation_aware asks for them, else null.
  Expected<Factorization> (*factorize)(const analysis::WeightedLayer& layer, const LayerShape& shape,
                                       const std::vector<float>& weight, const LowrankOptions& options, double ratio,
                                       const prune::LayerInputStats* inputs);
};

// Factorizes every layer the method applies to (minus exclusions), gated by
// Note [Latency gate], and rewrites the graph. Per-layer results: rank(s),
// relative_error, macs_dense, macs_factorized, dense_ms / factorized_ms
// (with the gate) and factorized (1) or left dense (0).
Expected<pass::PassResult> factorize_layers(ir::Graph& graph, const Method& method, const LowrankOptions& options,
                                            pass::PassContext& context);

// The MACs per batch element of a chain applied to `input` (shapes inferred).
Expected<int64_t> chain_macs(const std::vector<ChainLayer>& chain, const ir::Shape& input, bool has_bias);

// A conv2d of the chain with an f32 weight of `shape` holding `values`.
ChainLayer conv_layer(ir::Shape shape, const std::vector<float>& values, ir::AttributeMap attrs, std::string suffix);
// Attributes of a chain's conv2d layers.
ir::AttributeMap conv_attrs(std::vector<int64_t> stride, std::vector<int64_t> padding, std::vector<int64_t> dilation,
                            int64_t groups);
// A 1x1 conv: stride 1, no padding.
ir::AttributeMap pointwise_attrs();
// The vertical (kh x 1) and horizontal (1 x kw) halves of `conv`'s stride,
// padding [top, left, bottom, right] and dilation, for a separable chain.
ir::AttributeMap vertical_attrs(const ir::Node& conv, int64_t groups);
ir::AttributeMap horizontal_attrs(const ir::Node& conv, int64_t groups);
// Why a separable method (spatial_svd, cp) cannot take `layer`, or "": it
// needs an ungrouped conv2d whose kernel has both sides > 1.
std::string separable_skip_reason(const analysis::WeightedLayer& layer);

// Note [Low-rank ratio and ranks]: rank r rounded to round_to within [1, full].
int64_t round_rank(int64_t rank, int64_t round_to, int64_t full);
// The largest r in [1, full] with cost(r) <= budget (1 when none is).
int64_t largest_rank_within(int64_t full, double budget, const std::function<double(int64_t)>& cost);

}  // namespace compress::lowrank::detail

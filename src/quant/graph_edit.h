// Small graph edits shared by the preparation passes (CLE, bias correction, SmoothQuant).
#pragma once

#include <string>
#include <vector>

#include "compress/analysis/weighted_layers.h"
#include "compress/ir/graph.h"
#include "compress/ir/sparse_layout.h"
#include "compress/support/logging.h"

namespace compress::quant {

// An f32 constant that is not quantized; sparse ones count (their values are
// read densified and written back in their layout).
inline bool is_f32_constant(const ir::Value* v) {
  return v->is_constant() && v->dtype() == ir::DType::kF32 && !v->constant().is_quantized();
}

// conv2d/linear with a constant f32 weight and (if present) bias: the
// layers the int8 backends run (qconv2d, qlinear), which PTQ quantizes and
// the preparation passes rescale.
inline bool is_weighted_layer(const ir::Node& n) {
  analysis::WeightedLayerQuery query;
  query.ops = {ir::OpKind::conv2d, ir::OpKind::linear};
  return analysis::as_weighted_layer(n, query).has_value();
}

// A copy of a constant's logical values in double (the passes compute in
// double, store f32); a sparse constant is densified.
inline Expected<std::vector<double>> to_double(const ir::Value& v) {
  COMPRESS_ASSIGN_OR_RETURN(ir::Tensor t, v.constant().dense_f32(v.name()));
  const float* p = t.data<float>();
  return std::vector<double>(p, p + t.numel());
}

inline Expected<ir::Tensor> from_double(const std::vector<double>& v, const ir::Shape& shape) {
  COMPRESS_ASSIGN_OR_RETURN(ir::Tensor t, ir::Tensor::zeros(ir::DType::kF32, shape));
  for (size_t i = 0; i < v.size(); ++i) t.data<float>()[i] = static_cast<float>(v[i]);
  return t;
}

// Points input `index` of `n` at a new constant holding `values` (named after
// the old one plus `suffix`), stored in the old constant's layout (Note
// [Writing back a weight]); the old constant is left for
// remove_unused_constants (another node may share it).
inline Status replace_constant_input(ir::Graph& g, ir::Node* n, size_t index, const std::vector<double>& values,
                                     const std::string& suffix) {
  const ir::Value* old = n->input(index);
  COMPRESS_ASSIGN_OR_RETURN(ir::Tensor dense, from_double(values, old->shape()));
  std::string fallback;
  COMPRESS_ASSIGN_OR_RETURN(ir::Tensor t, ir::store_like(dense, old->constant(), &fallback));
  if (!fallback.empty()) log_info("{}: '{}': {}; stored as csr", n->name(), old->name(), fallback);
  COMPRESS_ASSIGN_OR_RETURN(ir::Value * v, g.add_constant(g.unique_name(old->name() + suffix), std::move(t)));
  n->replace_input(index, v);
  return Status::ok();
}

// The layer's bias (zeros when it has none), one value per output channel.
inline Expected<std::vector<double>> bias_of(const ir::Node& n) {
  const int64_t channels = n.input(1)->shape()[0];
  if (n.num_inputs() > 2) return to_double(*n.input(2));
  return std::vector<double>(static_cast<size_t>(channels), 0.0);
}

// Sets the layer's bias, adding the input when it had none.
inline Status set_bias(ir::Graph& g, ir::Node* n, const std::vector<double>& bias, const std::string& suffix) {
  if (n->num_inputs() > 2) return replace_constant_input(g, n, 2, bias, suffix);
  COMPRESS_ASSIGN_OR_RETURN(ir::Tensor t, from_double(bias, {static_cast<int64_t>(bias.size())}));
  COMPRESS_ASSIGN_OR_RETURN(ir::Value * v, g.add_constant(g.unique_name(n->name() + ".bias" + suffix), std::move(t)));
  n->add_input(v);
  return Status::ok();
}

}  // namespace compress::quant

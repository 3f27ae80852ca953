// Choosing the quantized layers and their boundary params (Note [PTQ boundaries]).
#include "compress/quant/layer_plan.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <optional>

#include "compress/quant/scheme.h"
#include "compress/runtime/quant_arith.h"
#include "graph_edit.h"

namespace compress::quant {
namespace {

// conv2d/linear with an f32 input, an f32 constant weight and bias. A pruned
// (sparse) weight is quantized from its dense values: int8 kernels take
// dense weights, and int8 beats a sparse f32 layer in size and time.
bool quantizable(const ir::Node& n) {
  return is_weighted_layer(n) && n.input(0)->dtype() == ir::DType::kF32;
}

// Note [Fusing ReLU6 and clamp(0, M)]
// relu6 and clamp(min = 0, max = M) after a quantized layer are fused like
// ReLU: the layer's u8 output gets zero point 0 = qmin and params from the
// observed range of the activation's OUTPUT (within [0, M]; the range max is
// also capped at M), and the activation node is dropped. This is exact, i.e.
// quantize(y) == quantize(act(y)) for every f32 y, where quantize(x) =
// clamp(nearbyint(x * (1/s)), 0, 255) (the contract's rounding, zp 0):
// - y < 0:       act(y) = 0, quantize(0) = 0, and quantize(y) <= quantize(0)
//                because quantize is monotone, so both clamp to 0;
// - 0 <= y <= M: act(y) = y;
// - y > M:       act(y) = M, and quantize(y) >= quantize(M) by monotonicity,
//                so both are 255 PROVIDED quantize(M) == 255, i.e. 255*s <= M
//                (up to rounding: nearbyint(M * (1/s)) >= 255).
// The provided-clause is checked on the final params (exact_upper_bound). An
// observed max below M gives a smaller s and keeps it; it fails only when
// the scale fallback of a zero-width range (s = 1, Note [Scale fallbacks])
// applies, and then the params for [0, M] are used instead, which satisfy it
// by construction (fusable_activation only accepts M with M/255 a normal
// scale). So the int8 graph computes quantize(act(y)) exactly, which is what
// the fake-quant twin computes (it keeps the activation and fake-quantizes
// its output with the same params). The same argument keeps Note [Requantize
// after max pooling] exact: act is monotone, so it commutes with max.
struct FusedActivation {
  const ir::Node* node = nullptr;
  float upper = INFINITY;  // M of relu6 (6) / clamp; +inf for relu
};

// quantize(upper) == qmax with zero point qmin: clamping at qmax is the clamp at upper.
bool exact_upper_bound(const ir::QuantParams& p, float upper) {
  if (std::isinf(upper)) return p.zero_points()[0] == p.qmin();
  return p.zero_points()[0] == p.qmin() &&
         runtime::quantize_value(upper, runtime::quant_inv_scale(p.scales()[0]), p.zero_points()[0], p.qmin(),
                                 p.qmax()) == p.qmax();
}

// The relu / relu6 / clamp(0, M) to fuse into `n`'s output, if it is the output's only user.
std::optional<FusedActivation> fusable_activation(const ir::Graph& g, const ir::Node& n) {
  const ir::Value* out = n.output();
  if (out->uses().size() != 1 || g.is_output(out)) return std::nullopt;
  const ir::Node* user = out->uses()[0].user;
  if (user->is(ir::OpKind::relu)) return FusedActivation{user, INFINITY};
  if (user->is(ir::OpKind::relu6)) return FusedActivation{user, 6.0f};
  if (user->is(ir::OpKind::clamp)) {
    const double lo = user->attr_float("min"), hi = user->attr_float("max");
    if (lo != 0.0 || !(hi > 0.0)) return std::nullopt;
    if (std::isinf(hi)) return FusedActivation{user, INFINITY};
    // M must be an f32 whose [0, M] scale is a normal scale (no fallback):
    // then activation_params({0, M}) meets exact_upper_bound.
    const float m = static_cast<float>(hi);
    if (static_cast<double>(m) != hi || !(m / 255.0f >= kMinScale)) return std::nullopt;
    return FusedActivation{user, m};
  }
  return std::nullopt;
}

// Ops whose outputs are a selection or rearrangement of their input values.
bool moves_values(const ir::Node& n) {
  return n.is(ir::OpKind::max_pool2d) || n.is(ir::OpKind::flatten) || n.is(ir::OpKind::reshape);
}

// An add that int8 conversion may turn into a qadd (Note [Quantized residual
// adds], int8_conversion.cpp): its result, after an optional relu, is read
// only by quantized layers and other adds.
bool may_become_qadd(const ir::Graph& g, const ir::Node& add, const std::set<std::string>& layers) {
  if (add.num_inputs() != 2) return false;
  const ir::Value* y = add.output();
  if (y->uses().size() == 1 && !g.is_output(y) && y->uses()[0].user->is(ir::OpKind::relu)) {
    y = y->uses()[0].user->output();
  }
  if (g.is_output(y) || y->uses().empty()) return false;
  for (const ir::Use& u : y->uses()) {
    const bool layer = u.input_index == 0 && layers.count(u.user->name()) != 0;
    if (!layer && !u.user->is(ir::OpKind::add)) return false;
  }
  return true;
}

// Note [f32 outputs for f32 readers]
// A layer's u8 output is worth its requantize only when something reads it
// as u8: a quantized layer (directly or through max_pool2d/flatten/reshape)
// or an add that may become a qadd. When every reader is an f32 op (gelu,
// layer_norm, attention, softmax, average pooling, concat, an add into a
// layer norm...), the u8 output would be dequantized right away: the layer
// writes f32 instead, one step and one rounding fewer (a transformer's
// projections, the last block of a resnet before its pool). A fused
// activation is unfused then and stays an f32 op after the layer.
bool feeds_int8_readers(const ir::Graph& g, const ir::Value* v, const std::set<std::string>& layers) {
  for (const ir::Use& u : v->uses()) {
    const ir::Node& reader = *u.user;
    if (moves_values(reader) && feeds_int8_readers(g, reader.output(), layers)) return true;
    if (reader.is(ir::OpKind::add) && may_become_qadd(g, reader, layers)) return true;
    if (u.input_index == 0 && layers.count(reader.name()) != 0) return true;
  }
  return false;
}

}  // namespace

std::vector<std::string> quantizable_nodes(const ir::Graph& graph) {
  std::vector<std::string> out;
  for (const auto& n : graph.node_list()) {
    if (quantizable(*n)) out.push_back(n->name());
  }
  return out;
}

std::vector<std::string> values_to_observe(const ir::Graph& graph, const std::vector<std::string>& nodes) {
  std::vector<std::string> out;
  auto add = [&out](const std::string& name) {
    if (std::find(out.begin(), out.end(), name) == out.end()) out.push_back(name);
  };
  for (const std::string& name : nodes) {
    const ir::Node* n = graph.find_node(name);
    if (n == nullptr) continue;
    add(n->input(0)->name());
    const auto act = fusable_activation(graph, *n);
    add(act ? act->node->output()->name() : n->output()->name());
  }
  return out;
}

Expected<std::vector<LayerQuant>> plan_layers(const ir::Graph& graph, const std::vector<std::string>& nodes,
                                              const CalibrationResult& calibration, const PlanOptions& options) {
  auto observed = [&calibration](const std::string& value) -> Expected<Range> {
    auto it = calibration.ranges.find(value);
    if (it == calibration.ranges.end()) return not_found("quant: no calibrated range for '{}'", value);
    return it->second;
  };
  std::vector<LayerQuant> layers;
  std::map<const ir::Value*, const LayerQuant*> by_output;  // u8 layer outputs, for reuse
  const std::set<std::string> layer_set(nodes.begin(), nodes.end());
  layers.reserve(nodes.size());
  for (const std::string& name : nodes) {
    const ir::Node* n = graph.find_node(name);
    if (n == nullptr || !quantizable(*n)) return invalid_argument("quant: '{}' is not a quantizable conv2d/linear", name);
    auto act = fusable_activation(graph, *n);
    const ir::Value* out = act ? act->node->output() : n->output();
    // Note [f32 outputs for f32 readers]; a graph output stays f32 too, and
    // then an activation before it must stay in the graph as well.
    const bool f32_output = graph.is_output(out) || !feeds_int8_readers(graph, out, layer_set);
    if (f32_output && act) {
      act.reset();
      out = n->output();
    }

    const ir::Value* source = n->input(0);
    while (source->producer() != nullptr && moves_values(*source->producer())) source = source->producer()->input(0);
    auto reused = by_output.find(source);
    std::optional<ir::QuantParams> input_params;
    if (reused != by_output.end()) {
      input_params = *reused->second->output_params;
    } else {
      COMPRESS_ASSIGN_OR_RETURN(Range r, observed(n->input(0)->name()));
      COMPRESS_ASSIGN_OR_RETURN(input_params, activation_params(r, n->input(0)->name()));
    }
    COMPRESS_ASSIGN_OR_RETURN(ir::QuantParams w_params, weight_params(n->input(1)->constant(), n->input(1)->name(),
                                                                           options.weight_granularity,
                                                                           options.weight_bits));
    std::optional<ir::QuantParams> out_params;
    if (!f32_output) {
      COMPRESS_ASSIGN_OR_RETURN(Range r, observed(out->name()));
      if (act) {  // Note [Fusing ReLU6 and clamp(0, M)]
        r.min = std::max(r.min, 0.0f);
        r.max = std::min(r.max, act->upper);
      }
      COMPRESS_ASSIGN_OR_RETURN(out_params, activation_params(r, out->name()));
      if (act && !exact_upper_bound(*out_params, act->upper)) {
        COMPRESS_ASSIGN_OR_RETURN(out_params, activation_params(Range{0.0f, act->upper}, out->name()));
        if (!exact_upper_bound(*out_params, act->upper)) {
          return make_error(StatusCode::kInternal, "quant: fused '{}' on '{}' is not exact on its output params", act->node->op(), name);
        }
      }
    }
    layers.push_back(LayerQuant{name, act ? act->node->name() : std::string(), n->input(0)->name(), out->name(),
                                *input_params, std::move(w_params), std::move(out_params)});
    // reserve() above keeps this pointer valid while the vector grows.
    if (layers.back().output_params) by_output[out] = &layers.back();
  }
  return layers;
}

}  // namespace compress::quant

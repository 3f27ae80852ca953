// convert_to_int8: the deployable graph (quantize, qconv2d/qlinear, dequantize).
#include <functional>
#include <map>
#include <set>
#include <memory>

#include "compress/quant/layer_plan.h"
#include "compress/quant/scheme.h"
#include "quant_attrs.h"

namespace compress::quant {
namespace {

// The u8 value carrying `x` quantized with `params`, created before `before`.
// Reuses what exists: a cached quantize of x, the u8 value x was dequantized
// from, or a flatten/reshape of such a value (they keep per-tensor params).
Expected<ir::Value*> quantized_input(ir::Graph& g, ir::Value* x, const ir::QuantParams& params, ir::Node* before,
                                     std::map<ir::Value*, ir::Value*>& cache) {
  auto it = cache.find(x);
  if (it != cache.end() && *it->second->type().quant == params) return it->second;
  ir::Node* p = x->producer();
  if (p != nullptr && p->op() == "dequantize" && *p->input(0)->type().quant == params) return p->input(0);
  if (p != nullptr && (p->op() == "flatten" || p->op() == "reshape")) {
    ir::Node* d = p->input(0)->producer();
    if (d != nullptr && d->op() == "dequantize" && *d->input(0)->type().quant == params) {
      // add_node, not clone_node: the output type must be re-inferred as u8.
      COMPRESS_ASSIGN_OR_RETURN(ir::Node * moved,
                                g.add_node(p->op(), {d->input(0)}, p->attrs(), p->name() + ".q", before));
      cache[x] = moved->output();
      return moved->output();
    }
  }
  COMPRESS_ASSIGN_OR_RETURN(ir::Node * q, g.add_node("quantize", {x}, quant_attrs(params), x->name() + ".quantize", before));
  cache[x] = q->output();
  return q->output();
}

// Note [Requantize after max pooling]
// quantize() is monotone (round, then clamp), so for the values of a window
// quantize(max(y)) == max(quantize(y)). When a layer's requantized output
// feeds only max_pool2d nodes whose results reach nothing but quantized
// layers (through flatten/reshape at most), the layer writes its f32 result,
// the pool runs on it, and the quantize that the next layer needs anyway
// produces exactly the u8 values the u8-output-then-pool graph would. A fused
// ReLU is still exact: its output range starts at 0, so zero_point = 0 = qmin
// and that quantize clamps negatives to 0; a fused ReLU6/clamp(0, M) too
// (Note [Fusing ReLU6 and clamp(0, M)], layer_plan.cpp: quantize(M) == 255,
// and the activation is monotone). This saves a dequantize of the
// largest activations and keeps the graph bit-identical in what it computes.
bool pool_then_quantize(const ir::Graph& g, const ir::Value* out, const std::set<std::string>& layer_nodes) {
  std::function<bool(const ir::Value*)> only_feeds_layers = [&](const ir::Value* v) {
    for (const ir::Value* o : g.outputs()) {
      if (o == v) return false;
    }
    if (v->uses().empty()) return false;
    for (const ir::Use& u : v->uses()) {
      const ir::Node* n = u.user;
      if (n->op() == "flatten" || n->op() == "reshape") {
        if (!only_feeds_layers(n->output())) return false;
      } else if (u.input_index != 0 || layer_nodes.count(n->name()) == 0) {
        return false;
      }
    }
    return true;
  };
  if (out->uses().empty()) return false;
  for (const ir::Use& u : out->uses()) {
    if (u.user->op() != "max_pool2d" || !only_feeds_layers(u.user->output())) return false;
  }
  return true;
}

}  // namespace

Status convert_to_int8(ir::Graph& g, const std::vector<LayerQuant>& layers, const Int8Options& options) {
  std::map<ir::Value*, ir::Value*> cache;
  std::set<std::string> layer_nodes;
  for (const LayerQuant& l : layers) layer_nodes.insert(l.node);
  for (const LayerQuant& l : layers) {
    ir::Node* n = g.find_node(l.node);
    ir::Value* out = g.find_value(l.output);
    if (n == nullptr || out == nullptr) return not_found("int8 conversion: layer '{}' is not in the graph", l.node);
    COMPRESS_ASSIGN_OR_RETURN(ir::Value * xq, quantized_input(g, n->input(0), l.input_params, n, cache));
    COMPRESS_ASSIGN_OR_RETURN(ir::Tensor wq, quantize_tensor(n->input(1)->constant(), l.weight_params));
    COMPRESS_ASSIGN_OR_RETURN(ir::Value * w, g.add_constant(g.unique_name(n->input(1)->name() + ".int8"), wq));
    std::vector<ir::Value*> inputs = {xq, w};
    // The bias stays f32 (real units): the contract adds it after scaling the
    // accumulator, the fake-quant graph adds the same f32 bias.
    if (n->num_inputs() > 2) inputs.push_back(n->input(2));

    ir::AttributeMap attrs = n->attrs();
    const bool pooled =
        options.pool_before_requantize && l.output_params && pool_then_quantize(g, out, layer_nodes);
    if (l.output_params && !pooled) {
      const ir::QuantParams& o = *l.output_params;
      attrs["out_dtype"] = std::string(ir::dtype_name(o.storage()));
      attrs["out_scale"] = static_cast<double>(o.scales()[0]);
      attrs["out_zero_point"] = static_cast<int64_t>(o.zero_points()[0]);
    } else {
      attrs["out_dtype"] = std::string("f32");
    }
    const std::string layer = n->name();
    n->set_name(g.unique_name(layer + ".f32"));
    COMPRESS_ASSIGN_OR_RETURN(
        ir::Node * q, g.add_node(n->op() == "conv2d" ? "qconv2d" : "qlinear", inputs, std::move(attrs), layer, n));
    ir::Value* result = q->output();
    if (l.output_params && !pooled) {
      COMPRESS_ASSIGN_OR_RETURN(ir::Node * dq, g.add_node("dequantize", {q->output()}, {}, layer + ".dequantize", n));
      result = dq->output();
    }
    g.replace_all_uses_with(out, result);
    if (!l.relu.empty()) {
      ir::Node* relu = g.find_node(l.relu);
      if (relu != nullptr) COMPRESS_RETURN_IF_ERROR(g.remove_node(relu));
    }
    COMPRESS_RETURN_IF_ERROR(g.remove_node(n));
    q->set_name(layer);  // the layer keeps its name now that the f32 node is gone
  }
  g.remove_dead_nodes();
  g.remove_unused_constants();
  return Status::ok();
}

}  // namespace compress::quant

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

// out_qmin/out_qmax for an output range narrower than its dtype's (a 4-bit
// activation in u8 is [0, 15]); the default range needs no attribute.
void set_output_range(ir::AttributeMap& attrs, const ir::QuantParams& p) {
  const ir::DTypeTraits& info = ir::traits(p.storage());
  if (p.qmin() == info.min_value && p.qmax() == info.max_value) return;
  attrs["out_qmin"] = p.qmin();
  attrs["out_qmax"] = p.qmax();
}

// The u8 value carrying `x` quantized with `params`, created before `before`.
// Reuses what exists: a cached quantize of x, the u8 value x was dequantized
// from, or a flatten/reshape of such a value (they keep per-tensor params).
// Only then, and only if `may_quantize`, a new quantize; else null.
Expected<ir::Value*> quantized_input(ir::Graph& g, ir::Value* x, const ir::QuantParams& params, ir::Node* before,
                                     std::map<ir::Value*, ir::Value*>& cache, bool may_quantize = true) {
  auto it = cache.find(x);
  if (it != cache.end() && *it->second->type().quant == params) return it->second;
  ir::Node* p = x->producer();
  if (p != nullptr && p->is(ir::OpKind::dequantize) && *p->input(0)->type().quant == params) return p->input(0);
  if (p != nullptr && (p->is(ir::OpKind::flatten) || p->is(ir::OpKind::reshape))) {
    ir::Node* d = p->input(0)->producer();
    if (d != nullptr && d->is(ir::OpKind::dequantize) && *d->input(0)->type().quant == params) {
      // add_node, not clone_node: the output type must be re-inferred as u8.
      // A per-axis value the op cannot carry is only an error when nothing
      // else may be done (with may_quantize the caller quantizes x instead).
      Expected<ir::Node*> moved = g.add_node(p->op(), {d->input(0)}, p->attrs(), p->name() + ".q", before);
      if (moved.has_value()) {
        cache[x] = (*moved)->output();
        return (*moved)->output();
      }
      if (!may_quantize) return nullptr;
    }
  }
  if (!may_quantize) return nullptr;
  COMPRESS_ASSIGN_OR_RETURN(ir::Node * q, g.add_node(ir::OpKind::quantize, {x}, quant_attrs(params), x->name() + ".quantize", before));
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
// It is the Int8Options::pool_before_requantize form; the default pools the
// u8 values instead (Note [Max pooling on u8]), the same values with a
// quarter of the bytes moved, and tests check the two agree bit for bit.
bool pool_then_quantize(const ir::Graph& g, const ir::Value* out, const std::set<std::string>& layer_nodes) {
  std::function<bool(const ir::Value*)> only_feeds_layers = [&](const ir::Value* v) {
    if (g.is_output(v) || v->uses().empty()) return false;
    for (const ir::Use& u : v->uses()) {
      const ir::Node* n = u.user;
      if (n->is(ir::OpKind::flatten) || n->is(ir::OpKind::reshape)) {
        if (!only_feeds_layers(n->output())) return false;
      } else if (u.input_index != 0 || layer_nodes.count(n->name()) == 0) {
        return false;
      }
    }
    return true;
  };
  if (out->uses().empty()) return false;
  for (const ir::Use& u : out->uses()) {
    if (!u.user->is(ir::OpKind::max_pool2d) || !only_feeds_layers(u.user->output())) return false;
  }
  return true;
}

// The i8/u8 per-tensor value that `v` is the dequantize of, or null.
ir::Value* dequantized_from(ir::Value* v) {
  ir::Node* p = v->producer();
  if (p == nullptr || !p->is(ir::OpKind::dequantize)) return nullptr;
  ir::Value* q = p->input(0);
  const auto& params = q->type().quant;
  if (params == nullptr || params->granularity() != ir::QuantGranularity::kPerTensor) return nullptr;
  if (q->dtype() != ir::DType::kU8 && q->dtype() != ir::DType::kI8) return nullptr;
  return q;
}

// A layer's u8 output that nothing but its dequantize reads, and that
// dequantize nothing but one node: the add can take the layer's place as its
// only reader (what the onednn backend fuses as a sum post-op).
bool sole_layer_output(const ir::Value* q) {
  const ir::Node* p = q->producer();
  if (p == nullptr || (!p->is(ir::OpKind::qconv2d) && !p->is(ir::OpKind::qlinear)) || q->uses().size() != 1) return false;
  const ir::Node* dq = q->uses()[0].user;
  return dq->is(ir::OpKind::dequantize) && dq->output()->uses().size() == 1;
}

// Note [Quantized residual adds]
// After the layers are converted, a residual block ends in
//   qconv2d -> dequantize -> add(x, .) [-> relu] -> quantize (params P) -> next layers
// with x itself a dequantized u8 value (another layer's output, or an
// earlier add's). When every reader of the add's result is a quantize with
// the same per-tensor params P, or another add, the add becomes
//   qadd(conv_u8, x_u8) with out params P
// (Note [Quantized add], docs/ops.md): the quantizes' outputs are replaced by
// the qadd's, and the other adds read a dequantize of it. Nothing is rounded
// that was not rounded before: the conv output and x were u8 already, and
// the add's result was quantized with P before every layer that read it. A
// following relu is fused when P's zero point is qmin: quantize(relu(y)) ==
// quantize(y) then (the clamp at qmin is the relu; Note [PTQ boundaries]).
// What changes is the rounding of the sum itself (one fused multiply-add
// instead of two roundings), at most one step of P on rare ties. An
// operand that a layer produced for this add alone goes first, so the
// onednn backend can fuse the add into that layer as a sum post-op (in
// mobilenet_v2's first block of a stage the other operand, the previous
// block's output, also feeds the next conv). Adds whose result feeds anything
// else (a pool, a graph output) stay f32: requantizing their result would
// add a rounding the f32 graph does not have.
Status quantize_residual_adds(ir::Graph& g) {
  std::vector<std::pair<std::string, std::string>> renames;  // a qadd's name now, the add's name
  for (ir::Node* n : g.nodes()) {
    if (!n->is(ir::OpKind::add) || n->num_inputs() != 2) continue;
    ir::Value* a = dequantized_from(n->input(0));
    ir::Value* b = dequantized_from(n->input(1));
    if (a == nullptr || b == nullptr || a->shape() != b->shape() || n->output()->shape() != a->shape()) continue;
    ir::Value* y = n->output();
    ir::Node* relu = nullptr;
    if (y->uses().size() == 1 && !g.is_output(y) && y->uses()[0].user->is(ir::OpKind::relu)) {
      relu = y->uses()[0].user;
      y = relu->output();
    }
    if (g.is_output(y) || y->uses().empty()) continue;
    std::vector<ir::Node*> quantizes;
    bool ok = true;
    for (const ir::Use& u : y->uses()) {
      if (u.user->is(ir::OpKind::quantize)) {
        quantizes.push_back(u.user);
      } else if (!u.user->is(ir::OpKind::add)) {
        ok = false;
      }
    }
    if (!ok || quantizes.empty()) continue;
    const auto params = quantizes[0]->output()->type().quant;
    if (params == nullptr || params->granularity() != ir::QuantGranularity::kPerTensor) continue;
    for (const ir::Node* q : quantizes) ok = ok && q->output()->type().quant && *q->output()->type().quant == *params;
    if (!ok || (relu != nullptr && params->zero_points()[0] != params->qmin())) continue;
    if (!sole_layer_output(a) && sole_layer_output(b)) std::swap(a, b);

    ir::AttributeMap attrs;
    attrs["out_dtype"] = std::string(ir::dtype_name(params->storage()));
    attrs["out_scale"] = static_cast<double>(params->scales()[0]);
    attrs["out_zero_point"] = static_cast<int64_t>(params->zero_points()[0]);
    set_output_range(attrs, *params);
    const std::string name = n->name();
    n->set_name(g.unique_name(name + ".f32"));
    COMPRESS_ASSIGN_OR_RETURN(ir::Node * qadd, g.add_node(ir::OpKind::qadd, {a, b}, std::move(attrs), name, n));
    // A narrower qmin/qmax than the dtype's would be lost in the attributes.
    if (!(*qadd->output()->type().quant == *params)) {
      COMPRESS_RETURN_IF_ERROR(g.remove_node(qadd));
      n->set_name(name);
      continue;
    }
    for (ir::Node* q : quantizes) g.replace_all_uses_with(q->output(), qadd->output());
    if (!y->uses().empty() && !(y->uses().size() == quantizes.size())) {
      COMPRESS_ASSIGN_OR_RETURN(ir::Node * dq, g.add_node(ir::OpKind::dequantize, {qadd->output()}, {}, name + ".dequantize", n));
      // Only the adds still read y (the quantizes are dead now).
      std::vector<std::pair<ir::Node*, size_t>> readers;
      for (const ir::Use& u : y->uses()) {
        if (u.user->is(ir::OpKind::add)) readers.emplace_back(u.user, u.input_index);
      }
      for (auto& [user, index] : readers) user->replace_input(index, dq->output());
    }
    renames.emplace_back(qadd->name(), name);
  }
  // The f32 adds (and relus) are dead now; removing them frees their names
  // for the qadds. (Not inside the loop: it walks a snapshot of the nodes.)
  // By name, not pointer: a qadd that only dead nodes read is removed too.
  g.remove_dead_nodes();
  for (const auto& [current, name] : renames) {
    ir::Node* qadd = g.find_node(current);
    if (qadd != nullptr && g.find_node(name) == nullptr) qadd->set_name(name);
  }
  return Status::ok();
}

// Note [Max pooling on u8]
// After the layers are converted, a layer's u8 output reaches a max pool as
//   qconv2d -> dequantize -> max_pool2d -> quantize (params P) -> next layer
// and the pool runs on f32 values four times the size of the u8 ones. Max
// commutes with dequantizing (Note [Max pooling on quantized values],
// runtime/reference/pooling.cpp), so the pool moves before the dequantize
// and runs on the u8 values with their params, exactly. The quantize then
// reads a dequantize; when P is the u8 value's own params (plan_layers gives
// a layer fed through a max pool its producer's output params), the pair is
// the identity and the next layer reads the pooled u8 value directly. The
// pool's f32 readers (a residual add, say) read the new dequantize, which
// lets quantize_residual_adds turn such adds into qadds (resnet's first
// stage). A flatten/reshape between the dequantize and the quantize moves
// onto the u8 value as well (quantized_input).
Status pool_quantized_values(ir::Graph& g) {
  for (ir::Node* n : g.nodes()) {
    if (!n->is(ir::OpKind::max_pool2d) || g.is_output(n->output())) continue;
    ir::Value* q = dequantized_from(n->input(0));
    if (q == nullptr) continue;
    const std::string name = n->name();
    n->set_name(g.unique_name(name + ".f32"));
    COMPRESS_ASSIGN_OR_RETURN(ir::Node * pool, g.add_node(ir::OpKind::max_pool2d, {q}, n->attrs(), name, n));
    COMPRESS_ASSIGN_OR_RETURN(ir::Node * dq,
                              g.add_node(ir::OpKind::dequantize, {pool->output()}, {}, name + ".dequantize", n));
    g.replace_all_uses_with(n->output(), dq->output());
    COMPRESS_RETURN_IF_ERROR(g.remove_node(n));
    pool->set_name(name);  // free again now that the f32 pool is gone
  }
  std::map<ir::Value*, ir::Value*> cache;
  for (ir::Node* n : g.nodes()) {
    if (!n->is(ir::OpKind::quantize)) continue;
    const auto& params = n->output()->type().quant;
    if (params == nullptr || g.is_output(n->output())) continue;
    COMPRESS_ASSIGN_OR_RETURN(ir::Value * q, quantized_input(g, n->input(0), *params, n, cache, false));
    if (q != nullptr && q->dtype() == n->output()->dtype()) g.replace_all_uses_with(n->output(), q);
  }
  return Status::ok();
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
      set_output_range(attrs, o);
    } else {
      attrs["out_dtype"] = std::string("f32");
    }
    const std::string layer = n->name();
    n->set_name(g.unique_name(layer + ".f32"));
    COMPRESS_ASSIGN_OR_RETURN(
        ir::Node * q, g.add_node(n->is(ir::OpKind::conv2d) ? "qconv2d" : "qlinear", inputs, std::move(attrs), layer, n));
    ir::Value* result = q->output();
    if (l.output_params && !pooled) {
      COMPRESS_ASSIGN_OR_RETURN(ir::Node * dq, g.add_node(ir::OpKind::dequantize, {q->output()}, {}, layer + ".dequantize", n));
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
  COMPRESS_RETURN_IF_ERROR(pool_quantized_values(g));
  if (options.quantized_adds) COMPRESS_RETURN_IF_ERROR(quantize_residual_adds(g));
  g.remove_dead_nodes();
  g.remove_unused_constants();
  return Status::ok();
}

}  // namespace compress::quant

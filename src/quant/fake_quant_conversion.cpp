// convert_to_fake_quant: the f32 simulation of the int8 graph, same params at the same places.
#include <map>

#include "compress/quant/layer_plan.h"
#include "quant_attrs.h"

namespace compress::quant {
namespace {

// Inserts fake_quant(v) and points every existing use of v (not the new node
// itself) at it. Appended at the end: the caller restores topological order.
Expected<ir::Value*> fake_quant_after(ir::Graph& g, ir::Value* v, const ir::QuantParams& params,
                                      const std::string& name) {
  const std::vector<ir::Use> uses = v->uses();
  COMPRESS_ASSIGN_OR_RETURN(ir::Node * fq, g.add_node(ir::OpKind::fake_quant, {v}, quant_attrs(params), name));
  for (const ir::Use& u : uses) u.user->replace_input(static_cast<size_t>(u.input_index), fq->output());
  return fq->output();
}

// A fake_quant's lower clamp (attributes qmin = qmax = 0: the dtype's range).
int64_t fake_quant_qmin(const ir::Node& fq) {
  if (fq.attr_int("qmin") != 0 || fq.attr_int("qmax") != 0) return fq.attr_int("qmin");
  const auto dtype = ir::dtype_from_name(fq.attr_string("dtype"));
  return dtype ? ir::traits(*dtype).min_value : 0;
}

// The value is on a fake-quant grid: a per-tensor fake_quant's output, or a
// max pool of one (max commutes with quantization). In the int8 graph it is
// a dequantized u8 value (Note [Max pooling on u8], int8_conversion.cpp).
bool on_quant_grid(const ir::Value* v) {
  const ir::Node* p = v->producer();
  while (p != nullptr && p->is(ir::OpKind::max_pool2d)) p = p->input(0)->producer();
  return p != nullptr && p->is(ir::OpKind::fake_quant) && p->attr_int("axis") == -1;
}

// Note [Fake-quant residual adds]
// convert_to_int8 turns an add of two dequantized values, whose result
// (after an optional fused relu) only quantizes with params P or feeds other
// adds, into a qadd (Note [Quantized residual adds]); those other adds then
// read the qadd's u8 result, i.e. fake_quant(y, P), not y. Without this step
// the simulation's skip connections would read the unrounded sum while the
// deployed graph reads the rounded one (resnet's identity shortcuts). The
// conditions are quantize_residual_adds' own, on the fake-quant graph.
void round_residual_skips(ir::Graph& g) {
  for (ir::Node* n : g.nodes()) {
    if (!n->is(ir::OpKind::add) || n->num_inputs() != 2) continue;
    if (!on_quant_grid(n->input(0)) || !on_quant_grid(n->input(1))) continue;
    if (n->input(0)->shape() != n->input(1)->shape() || n->output()->shape() != n->input(0)->shape()) continue;
    ir::Value* y = n->output();
    const bool relu = y->uses().size() == 1 && !g.is_output(y) && y->uses()[0].user->is(ir::OpKind::relu);
    if (relu) y = y->uses()[0].user->output();
    if (g.is_output(y) || y->uses().empty()) continue;
    ir::Node* first_fq = nullptr;
    bool ok = true;
    for (const ir::Use& u : y->uses()) {
      if (u.user->is(ir::OpKind::fake_quant)) {
        if (first_fq == nullptr) first_fq = u.user;
        ok = ok && u.user->attr_int("axis") == -1 && u.user->attrs() == first_fq->attrs();
      } else if (!u.user->is(ir::OpKind::add)) {
        ok = false;
      }
    }
    if (!ok || first_fq == nullptr) continue;
    if (relu && first_fq->attr_ints("zero_point").at(0) != fake_quant_qmin(*first_fq)) continue;
    std::vector<std::pair<ir::Node*, size_t>> adds;
    for (const ir::Use& u : y->uses()) {
      if (u.user->is(ir::OpKind::add)) adds.emplace_back(u.user, static_cast<size_t>(u.input_index));
    }
    for (auto& [user, index] : adds) user->replace_input(index, first_fq->output());
  }
}

}  // namespace

Status convert_to_fake_quant(ir::Graph& g, const std::vector<LayerQuant>& layers) {
  // f32 value -> its fake-quantized copy, so a value read by several layers
  // with the same params is fake-quantized once (as the int8 graph quantizes once).
  std::map<ir::Value*, ir::Value*> cache;
  for (const LayerQuant& l : layers) {
    ir::Node* n = g.find_node(l.node);
    ir::Value* out = g.find_value(l.output);
    if (n == nullptr || out == nullptr) return not_found("fake-quant conversion: layer '{}' is not in the graph", l.node);
    ir::Value* x = n->input(0);
    auto it = cache.find(x);
    if (it == cache.end()) {
      COMPRESS_ASSIGN_OR_RETURN(ir::Node * fq, g.add_node(ir::OpKind::fake_quant, {x}, quant_attrs(l.input_params),
                                                          x->name() + ".fake_quant", n));
      it = cache.emplace(x, fq->output()).first;
    }
    n->replace_input(0, it->second);
    COMPRESS_ASSIGN_OR_RETURN(ir::Node * fw, g.add_node(ir::OpKind::fake_quant, {n->input(1)}, quant_attrs(l.weight_params),
                                                        n->input(1)->name() + ".fake_quant", n));
    n->replace_input(1, fw->output());
    if (l.output_params) {
      COMPRESS_ASSIGN_OR_RETURN(ir::Value * fo, fake_quant_after(g, out, *l.output_params, l.output + ".fake_quant"));
      cache[fo] = fo;  // already on the grid of these params
    }
  }
  COMPRESS_RETURN_IF_ERROR(g.topological_sort());
  round_residual_skips(g);
  return g.topological_sort();
}

}  // namespace compress::quant

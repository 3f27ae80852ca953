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
  return g.topological_sort();
}

}  // namespace compress::quant

// Choosing the quantized layers and their boundary params (Note [PTQ boundaries]).
#include "compress/quant/layer_plan.h"

#include <algorithm>
#include <map>

#include "compress/quant/scheme.h"

namespace compress::quant {
namespace {

bool quantizable(const ir::Node& n) {
  if (n.op() != "conv2d" && n.op() != "linear") return false;
  if (n.input(0)->dtype() != ir::DType::kF32) return false;
  const ir::Value* w = n.input(1);
  if (!w->is_constant() || w->dtype() != ir::DType::kF32 || w->constant().is_sparse()) return false;
  if (n.num_inputs() > 2 && (!n.input(2)->is_constant() || n.input(2)->dtype() != ir::DType::kF32)) return false;
  return true;
}

bool is_graph_output(const ir::Graph& g, const ir::Value* v) {
  for (const ir::Value* o : g.outputs()) {
    if (o == v) return true;
  }
  return false;
}

// The ReLU to fuse into `n`'s output, if it is the output's only user.
const ir::Node* fusable_relu(const ir::Graph& g, const ir::Node& n) {
  const ir::Value* out = n.output();
  if (out->uses().size() != 1 || is_graph_output(g, out)) return nullptr;
  const ir::Node* user = out->uses()[0].user;
  return user->op() == "relu" ? user : nullptr;
}

// Ops whose outputs are a selection or rearrangement of their input values.
bool moves_values(const ir::Node& n) {
  return n.op() == "max_pool2d" || n.op() == "flatten" || n.op() == "reshape";
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
    const ir::Node* relu = fusable_relu(graph, *n);
    add(relu != nullptr ? relu->output()->name() : n->output()->name());
  }
  return out;
}

Expected<std::vector<LayerQuant>> plan_layers(const ir::Graph& graph, const std::vector<std::string>& nodes,
                                              const CalibrationResult& calibration) {
  auto observed = [&calibration](const std::string& value) -> Expected<Range> {
    auto it = calibration.ranges.find(value);
    if (it == calibration.ranges.end()) return not_found("quant: no calibrated range for '{}'", value);
    return it->second;
  };
  std::vector<LayerQuant> layers;
  std::map<const ir::Value*, const LayerQuant*> by_output;  // u8 layer outputs, for reuse
  layers.reserve(nodes.size());
  for (const std::string& name : nodes) {
    const ir::Node* n = graph.find_node(name);
    if (n == nullptr || !quantizable(*n)) return invalid_argument("quant: '{}' is not a quantizable conv2d/linear", name);
    const ir::Node* relu = fusable_relu(graph, *n);
    const ir::Value* out = relu != nullptr ? relu->output() : n->output();

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
    COMPRESS_ASSIGN_OR_RETURN(ir::QuantParams w_params, weight_params(n->input(1)->constant(), n->input(1)->name()));
    std::optional<ir::QuantParams> out_params;
    if (!is_graph_output(graph, out)) {
      COMPRESS_ASSIGN_OR_RETURN(Range r, observed(out->name()));
      COMPRESS_ASSIGN_OR_RETURN(out_params, activation_params(r, out->name()));
    }
    layers.push_back(LayerQuant{name, relu != nullptr ? relu->name() : std::string(), n->input(0)->name(), out->name(),
                                *input_params, std::move(w_params), std::move(out_params)});
    // reserve() above keeps this pointer valid while the vector grows.
    if (layers.back().output_params) by_output[out] = &layers.back();
  }
  return layers;
}

}  // namespace compress::quant

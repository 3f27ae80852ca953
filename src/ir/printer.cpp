#include "compress/ir/printer.h"

#include "compress/ir/sparse_layout.h"

namespace compress::ir {

std::string print_graph(const Graph& graph) {
  std::string out = fmt::format("graph {}(", graph.name.empty() ? "main" : graph.name);
  for (size_t i = 0; i < graph.inputs().size(); ++i) {
    const Value* in = graph.inputs()[i];
    out += fmt::format("{}%{}: {}", i ? ", " : "", in->name(), in->type().to_string());
  }
  out += ") -> (";
  for (size_t i = 0; i < graph.outputs().size(); ++i) out += fmt::format("{}%{}", i ? ", " : "", graph.outputs()[i]->name());
  out += ")\n";
  for (const Value* v : graph.constants()) {
    out += fmt::format("  const %{}: {}", v->name(), v->type().to_string());
    if (v->constant().is_sparse()) out += fmt::format(" sparse({})", v->constant().sparse_layout()->to_string());
    out += "\n";
  }
  for (const Node* node : graph.nodes()) {
    out += "  ";
    for (size_t i = 0; i < node->num_outputs(); ++i) out += fmt::format("{}%{}", i ? ", " : "", node->output(i)->name());
    out += fmt::format(" = {}(", node->op());
    for (size_t i = 0; i < node->num_inputs(); ++i) {
      const Value* in = node->input(i);
      out += fmt::format("{}%{}", i ? ", " : "", in ? in->name() : "<null>");
    }
    out += ")";
    if (!node->attrs().empty()) {
      out += " {";
      bool first = true;
      for (const auto& [name, value] : node->attrs()) {
        out += fmt::format("{}{}={}", first ? "" : ", ", name, attribute_to_string(value));
        first = false;
      }
      out += "}";
    }
    out += " :";
    for (size_t i = 0; i < node->num_outputs(); ++i) {
      out += fmt::format("{} {}", i ? "," : "", node->output(i)->type().to_string());
    }
    if (node->num_outputs() != 1 || node->output(0)->name() != node->name()) out += fmt::format("  # {}", node->name());
    out += "\n";
  }
  for (const Annotation& a : graph.annotations().list()) {
    out += fmt::format("  annotation {} of {}: {}{}\n", a.kind, a.target.to_string(), dtype_name(a.payload.dtype()),
                       shape_to_string(a.payload.shape()));
  }
  return out;
}

}  // namespace compress::ir

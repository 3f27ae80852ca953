#include "compress/ir/verifier.h"

#include <algorithm>
#include <unordered_map>
#include <unordered_set>

#include "compress/ir/op_schema.h"
#include "compress/ir/sparse_layout.h"
#include "compress/support/check.h"

namespace compress::ir {
namespace {

constexpr StatusCode kBad = StatusCode::kInvalidArgument;

std::string describe(const Node& node) { return fmt::format("node '{}' ({})", node.name(), node.op()); }

Status verify_constant(const Value& v) {
  const Tensor& t = v.constant();
  COMPRESS_CHECK(t.defined(), kBad, "constant '{}' has no tensor", v.name());
  COMPRESS_CHECK(t.dtype() == v.dtype() && t.shape() == v.shape(), kBad,
                 "constant '{}': tensor is {}{} but the value type says {}", v.name(), dtype_name(t.dtype()),
                 shape_to_string(t.shape()), v.type().to_string());
  if (t.quant()) COMPRESS_RETURN_IF_ERROR(t.quant()->check_shape(t.shape()).with_context("constant '" + v.name() + "'"));
  if (t.is_sparse()) {
    COMPRESS_RETURN_IF_ERROR(
        t.sparse_layout()->validate(t.shape(), t.stored_count()).with_context("constant '" + v.name() + "'"));
  }
  return Status::ok();
}

}  // namespace

Status verify(const Graph& graph) {
  std::unordered_set<const Value*> owned;
  std::unordered_set<std::string> value_names;
  for (const Value* v : graph.values()) {
    owned.insert(v);
    COMPRESS_CHECK(!v->name().empty(), kBad, "a value has an empty name");
    COMPRESS_CHECK(value_names.insert(v->name()).second, kBad, "duplicate value name '{}'", v->name());
    if (v->is_constant()) COMPRESS_RETURN_IF_ERROR(verify_constant(*v));
  }
  std::unordered_set<std::string> node_names;
  std::unordered_map<const Node*, size_t> position;
  size_t index = 0;
  for (const Node* node : graph.nodes()) {
    COMPRESS_CHECK(!node->name().empty(), kBad, "a {} node has an empty name", node->op());
    COMPRESS_CHECK(node_names.insert(node->name()).second, kBad, "duplicate node name '{}'", node->name());
    position[node] = index++;
  }

  // Structure first: dangling values, use lists, order/cycles.
  for (const Node* node : graph.nodes()) {
    for (size_t i = 0; i < node->num_inputs(); ++i) {
      const Value* in = node->input(i);
      COMPRESS_CHECK(in != nullptr, kBad, "{}: input {} is missing", describe(*node), i);
      COMPRESS_CHECK(owned.count(in), kBad, "{}: input {} refers to a value that is not in the graph (dangling)",
                     describe(*node), i);
      const Use use{const_cast<Node*>(node), static_cast<int>(i)};
      COMPRESS_CHECK(std::find(in->uses().begin(), in->uses().end(), use) != in->uses().end(), StatusCode::kInternal,
                     "{}: value '{}' does not list its use as input {}", describe(*node), in->name(), i);
      if (const Node* producer = in->producer()) {
        COMPRESS_CHECK(position.count(producer), kBad, "{}: input '{}' comes from a node that is not in the graph",
                       describe(*node), in->name());
        if (position[producer] >= position[node]) {
          return invalid_argument(
              "{}: input '{}' is produced by '{}' which does not come before it (a cycle or out-of-order node)",
              describe(*node), in->name(), producer->name());
        }
      }
    }
    for (const Value* out : node->outputs()) {
      COMPRESS_CHECK(owned.count(out) && out->producer() == node, kBad, "{}: output '{}' is not wired to its node",
                     describe(*node), out->name());
    }
  }
  for (const Value* v : graph.values()) {
    for (const Use& use : v->uses()) {
      COMPRESS_CHECK(position.count(use.user) && use.input_index >= 0 &&
                         static_cast<size_t>(use.input_index) < use.user->num_inputs() &&
                         use.user->input(static_cast<size_t>(use.input_index)) == v,
                     StatusCode::kInternal, "value '{}' has a stale use", v->name());
    }
  }
  for (const Value* in : graph.inputs()) {
    COMPRESS_CHECK(owned.count(in) && in->is_input(), kBad, "graph input '{}' is not an input value",
                   in ? in->name() : "?");
  }
  COMPRESS_CHECK(!graph.outputs().empty(), kBad, "graph has no outputs");
  for (const Value* out : graph.outputs()) {
    COMPRESS_CHECK(out != nullptr && owned.count(out), kBad, "a graph output refers to a value not in the graph");
  }

  // Then ops: known, arity, attributes, types.
  for (const Node* node : graph.nodes()) {
    COMPRESS_CHECK(node->schema() != nullptr, StatusCode::kNotFound, "{}: unknown op '{}'", describe(*node),
                   node->op());
    auto types = infer_node_types(*node);
    if (!types) return types.status().with_context(describe(*node));
    COMPRESS_CHECK(types->size() == node->num_outputs(), kBad, "{}: has {} outputs, the op produces {}",
                   describe(*node), node->num_outputs(), types->size());
    for (size_t i = 0; i < types->size(); ++i) {
      COMPRESS_CHECK((*types)[i] == node->output(i)->type(), kBad,
                     "{}: output '{}' is declared {} but the op infers {} (shape mismatch)", describe(*node),
                     node->output(i)->name(), node->output(i)->type().to_string(), (*types)[i].to_string());
    }
  }
  return Status::ok();
}

}  // namespace compress::ir

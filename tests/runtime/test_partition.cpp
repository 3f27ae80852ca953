// The shared partitioner: placement, boundaries, extracted partitions, and a
// partitioned plan equal to the reference on a backend that lacks some ops.
#include <catch2/catch.hpp>

#include <set>

#include "../ir/ir_test_util.h"
#include "compress/runtime/partition.h"
#include "compress/runtime/reference.h"

namespace compress::test {
namespace {

using ir::DType;
using ir::Graph;
using ir::Tensor;
using ir::Value;

Value* node(Graph& g, const std::string& op, std::vector<Value*> inputs, const std::string& name,
            ir::AttributeMap attrs = {}) {
  auto n = g.add_node(op, inputs, std::move(attrs), name);
  INFO(n.status().to_string());
  REQUIRE(n.has_value());
  return (*n)->output();
}

// A backend that runs everything the reference runs except the ops it is
// told to refuse, and fails loudly if a refused op reaches its compile().
class PickyBackend : public runtime::Backend {
 public:
  explicit PickyBackend(std::set<ir::OpKind> refused) : refused_(std::move(refused)) {}
  std::string_view name() const override { return "picky"; }
  runtime::OpCoverage op_coverage(ir::OpKind kind) const override {
    if (refused_.count(kind)) return {false, "picky refuses it"};
    return {true, ""};
  }
  runtime::SupportDecision supports(const ir::Node& node) const override {
    if (node.kind() == ir::OpKind::kUnknown) return {false, "picky knows no op '" + node.op() + "'"};
    if (refused_.count(node.kind())) return {false, "picky refuses " + node.op()};
    return {};
  }
  Expected<std::unique_ptr<runtime::ExecutionPlan>> compile(const ir::Graph& graph) override {
    for (const ir::Node* n : graph.nodes()) {
      if (refused_.count(n->kind())) return unsupported("picky was handed '{}'", n->name());
    }
    compiled_nodes += static_cast<int>(graph.num_nodes());
    return runtime::make_reference_backend()->compile(graph);
  }
  int compiled_nodes = 0;

 private:
  std::set<ir::OpKind> refused_;
};

// x -> linear -> gelu -> linear -> (+ x) -> softmax -> out, and a side output after gelu.
struct Model {
  Graph g;
  Value* x = nullptr;
};

Model model() {
  Model m;
  m.x = m.g.add_input("x", ir::ValueType{DType::kF32, {3, 8}, nullptr}).value();
  Value* w1 = m.g.add_constant("w1", filled({8, 8}, -0.5f, 0.011f)).value();
  Value* w2 = m.g.add_constant("w2", filled({8, 8}, 0.3f, -0.007f)).value();
  Value* h = node(m.g, "linear", {m.x, w1}, "fc1");
  Value* a = node(m.g, "gelu", {h}, "act");
  Value* y = node(m.g, "linear", {a, w2}, "fc2");
  Value* r = node(m.g, "add", {y, m.x}, "residual");
  Value* s = node(m.g, "softmax", {r}, "softmax");
  m.g.set_outputs({s, a, w1});  // a constant as an output too
  return m;
}

void check_same(const std::vector<Tensor>& got, const std::vector<Tensor>& want) {
  REQUIRE(got.size() == want.size());
  for (size_t o = 0; o < got.size(); ++o) {
    REQUIRE(got[o].shape() == want[o].shape());
    for (int64_t i = 0; i < want[o].numel(); ++i) CHECK(got[o].data<float>()[i] == want[o].data<float>()[i]);
  }
}

}  // namespace

TEST_CASE("partition_graph: runs of one placement, boundaries, fallbacks with reasons", "[runtime][partition]") {
  Model m = model();
  PickyBackend picky({ir::OpKind::gelu});
  auto parts = runtime::partition_graph(m.g, picky);
  REQUIRE(parts.has_value());
  REQUIRE(parts->partitions.size() == 3);
  CHECK(parts->partitions[0].on_backend);
  CHECK_FALSE(parts->partitions[1].on_backend);
  CHECK(parts->partitions[2].on_backend);
  CHECK(parts->partitions[0].nodes.size() == 1);
  CHECK(parts->partitions[2].nodes.size() == 3);
  // The gelu partition reads fc1's output and hands its own to fc2 and to the graph.
  CHECK(parts->partitions[1].inputs.size() == 1);
  CHECK(parts->partitions[1].inputs[0]->name() == "fc1");
  CHECK(parts->partitions[1].outputs.size() == 1);
  // The last partition reads gelu's output and the graph input x (the residual).
  CHECK(parts->partitions[2].inputs.size() == 2);
  REQUIRE(parts->fallbacks.size() == 1);
  CHECK(parts->fallbacks[0].node == "act");
  CHECK(parts->fallbacks[0].reason == "picky refuses gelu");

  PickyBackend everything({});
  auto whole = runtime::partition_graph(m.g, everything);
  REQUIRE(whole.has_value());
  CHECK(whole->partitions.size() == 1);
  CHECK(whole->fallbacks.empty());
}

TEST_CASE("extract_partition: a graph of its own that verifies", "[runtime][partition]") {
  Model m = model();
  PickyBackend picky({ir::OpKind::gelu});
  auto parts = runtime::partition_graph(m.g, picky).value();
  auto last = runtime::extract_partition(m.g, parts.partitions[2]);
  INFO(last.status().to_string());
  REQUIRE(last.has_value());
  CHECK(last->inputs().size() == 2);
  CHECK(last->num_nodes() == 3);
  CHECK(last->constants().size() == 1);  // w2 only
  CHECK(last->outputs().size() == 1);
}

TEST_CASE("compile_partitioned equals the reference, at the declared and another batch", "[runtime][partition]") {
  Model m = model();
  for (const std::set<ir::OpKind>& refused :
       {std::set<ir::OpKind>{ir::OpKind::gelu}, std::set<ir::OpKind>{ir::OpKind::linear},
        std::set<ir::OpKind>{ir::OpKind::softmax, ir::OpKind::gelu}, std::set<ir::OpKind>{}}) {
    PickyBackend picky(refused);
    auto plan = runtime::compile_partitioned(m.g, picky);
    INFO(plan.status().to_string());
    REQUIRE(plan.has_value());
    for (int64_t batch : {3, 5}) {
      const Tensor x = filled({batch, 8}, -1.0f, 0.023f);
      auto got = (*plan)->run({x});
      INFO(got.status().to_string());
      REQUIRE(got.has_value());
      check_same(*got, runtime::run_reference(m.g, {x}).value());
    }
    const runtime::PlanReport report = (*plan)->describe();
    if (!refused.empty()) {
      CHECK(report.backend == "picky+reference");
      CHECK(report.text.find("partitions (") != std::string::npos);
      CHECK(report.text.find("picky refuses") != std::string::npos);
      CHECK(picky.compiled_nodes > 0);
    }
  }
}

TEST_CASE("a node neither the backend nor the reference can run is an error naming it", "[runtime][partition]") {
  Graph g;
  Value* x = g.add_input("x", ir::ValueType{DType::kF32, {2, 2}, nullptr}).value();
  ir::Node* odd = g.add_node_unchecked("conv3d", {x}, {}, "odd", {ir::ValueType{DType::kF32, {2, 2}, nullptr}});
  g.set_outputs({odd->output()});
  PickyBackend picky({});
  auto parts = runtime::partition_graph(g, picky);
  REQUIRE_FALSE(parts.has_value());
  CHECK(parts.status().message().find("'odd'") != std::string::npos);
}

}  // namespace compress::test

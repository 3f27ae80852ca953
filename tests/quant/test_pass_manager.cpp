#include <catch2/catch.hpp>

#include "compress/pass/pass_manager.h"

using namespace compress;

namespace {

// Leaves a node whose declared output type contradicts the op table.
class BreakGraphPass : public pass::Pass {
 public:
  std::string name() const override { return "test.break_graph"; }
  Expected<pass::PassResult> run(ir::Graph& g, pass::PassContext&) override {
    ir::Node* n = g.add_node_unchecked("relu", {g.inputs()[0]}, {}, "broken", {ir::ValueType{ir::DType::kI32, {7}, nullptr}});
    g.set_outputs({n->output()});
    return pass::PassResult{true, {}, {}};
  }
};

class FailingPass : public pass::Pass {
 public:
  std::string name() const override { return "test.fail"; }
  Expected<pass::PassResult> run(ir::Graph&, pass::PassContext&) override { return invalid_argument("no luck"); }
};

ir::Graph tiny() {
  ir::Graph g;
  ir::Value* x = g.add_input("x", {ir::DType::kF32, {1, 4}, nullptr}).value();
  g.set_outputs({g.add_node("relu", {x}, {}, "relu").value()->output()});
  return g;
}

}  // namespace

TEST_CASE("PassManager verifies after each pass and names the pass that broke the graph") {
  ir::Graph g = tiny();
  pass::PassManager pm;
  pm.add(std::make_unique<BreakGraphPass>());
  pm.add(std::make_unique<FailingPass>());
  pass::PassContext ctx;
  auto r = pm.run(g, ctx);
  REQUIRE_FALSE(r.has_value());
  CHECK_THAT(r.status().message(), Catch::Contains("test.break_graph"));
}

TEST_CASE("PassManager stops at a failing pass with its name and message") {
  ir::Graph g = tiny();
  pass::PassManager pm;
  pm.add(std::make_unique<FailingPass>());
  pass::PassContext ctx;
  auto r = pm.run(g, ctx);
  REQUIRE_FALSE(r.has_value());
  CHECK_THAT(r.status().to_string(), Catch::Contains("test.fail") && Catch::Contains("no luck"));
}

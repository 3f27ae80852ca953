// Loads the PyTorch-generated op fixtures (cases.json + .npy) and checks the reference backend against them.
#pragma once

#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "compress/ir/graph.h"
#include "compress/support/status.h"

namespace compress::test {

// |got - want| <= atol + rtol * |want|, NaN only where the expectation is NaN.
struct ErrorBound {
  double rtol = 0.0;
  double atol = 0.0;
};

struct OpFixture {
  std::string name;
  std::string family;
  nlohmann::json spec;
};

// Every case of the manifest (family empty) or those of one family.
std::vector<OpFixture> load_op_fixtures(const std::string& family = "");

// Builds the case's graph (inputs with their declared shapes, constants,
// nodes through Graph::add_node) and the tensors to run it with.
struct BuiltFixture {
  ir::Graph graph;
  std::vector<ir::Tensor> inputs;
};
BuiltFixture build_fixture(const OpFixture& fixture);

// Runs a built case's graph: the reference backend, a compiled backend plan,
// the torch layer's executor.
using GraphRunner =
    std::function<Expected<std::vector<ir::Tensor>>(const ir::Graph&, const std::vector<ir::Tensor>&)>;

// Runs the case (through run_reference when `runner` is empty) and checks
// every output against every expectation with the bound of its class;
// reports through Catch.
void check_fixture(const OpFixture& fixture, const std::map<std::string, ErrorBound>& bounds,
                   const GraphRunner& runner = {});

ir::Tensor load_fixture_tensor(const std::string& file);

}  // namespace compress::test

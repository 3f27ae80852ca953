// The op x dtype harness: every available backend, at every compute type it
// offers, runs every PyTorch-computed op fixture (the reference backend's own
// cases, tests/fixtures/make_op_fixtures.py) and is held to a stated bound.
// A new backend (CUDA) gets every op case by adding its rows below.
#include <catch2/catch.hpp>

#include <map>
#include <set>
#include <string>

#include "compress/ir/op_schema.h"
#include "compress/runtime/backend.h"
#include "compress/support/check.h"
#include "op_fixtures.h"

namespace compress::test {
namespace {

// Note [Backend op bounds]
// Each fixture output carries checks against PyTorch in float64 (bound class
// X) and in float32 (X_vs_f32); see Note [Reference error bounds] in
// test_reference_ops.cpp. A backend that sums in float32 in its own order
// (oneDNN's blocked GEMM, its polynomial transcendental approximations) is
// held to the reference's bound plus the backend's bound against the
// reference (Note [onednn op bounds] in tests/onednn/test_onednn_ops.cpp):
//
//  backend/compute  exact  gemm                 norm / transcendental  graph               step1
//  onednn f32       0      rtol 2e-5 atol 1e-5  rtol 2e-5 atol 2e-6    rtol 1e-4 atol 1e-5 1 step
//  onednn bf16      0      rtol 1e-2 atol 2e-2  as f32 (norms and activations stay f32 in bf16 mode)
//
// bf16 rounds both GEMM operands to 8 significant bits, so an output's error
// scales with sum |x * w| rather than with |output|: a strided depthwise conv
// case whose terms cancel (output -0.055) measured 0.0123 (the atol).
//
// Integer ops are exact on every backend: the requantization contract
// (docs/quantization.md) fixes every rounding.
using Bounds = std::map<std::string, ErrorBound>;

Bounds onednn_f32_bounds() {
  const ErrorBound gemm{2e-5, 1e-5}, norm{2e-5, 2e-6}, graph{1e-4, 1e-5};
  return {{"exact", {0, 0}},
          {"exact_vs_f32", {0, 0}},
          {"gemm", gemm},
          {"gemm_vs_f32", gemm},
          {"norm", norm},
          {"norm_vs_f32", norm},
          {"transcendental", norm},
          {"transcendental_vs_f32", norm},
          {"graph", graph},
          {"graph_vs_f32", graph},
          {"step1", {0.0, 1.0}}};
}

Bounds onednn_bf16_bounds() {
  Bounds b = onednn_f32_bounds();
  const ErrorBound bf16{1e-2, 2e-2};
  for (const char* name : {"gemm", "gemm_vs_f32", "graph", "graph_vs_f32"}) b[name] = bf16;
  return b;
}

struct BackendRow {
  std::string backend;
  std::string compute;
  Bounds bounds;
};

// The reference backend is the fixtures' own subject (test_reference_ops.cpp).
std::vector<BackendRow> rows() {
  std::vector<BackendRow> out;
  for (const std::string& name : runtime::available_backends()) {
    if (name == "onednn") {
      out.push_back({name, "f32", onednn_f32_bounds()});
      out.push_back({name, "bf16", onednn_bf16_bounds()});
    }
  }
  return out;
}

}  // namespace

TEST_CASE("every op of the op table has PyTorch fixture cases", "[runtime][ops][coverage]") {
  std::set<std::string> covered;
  for (const OpFixture& c : load_op_fixtures()) {
    for (const auto& node : c.spec.at("nodes")) covered.insert(node.at("op").get<std::string>());
  }
  for (const ir::OpSchema& schema : ir::op_table()) {
    INFO("op " << schema.name << " has no case in tests/fixtures/make_op_fixtures.py");
    CHECK(covered.count(std::string(schema.name)) == 1);
  }
}

TEST_CASE("every backend and compute type runs every op fixture within its bound", "[runtime][ops][backends]") {
  const std::vector<OpFixture> cases = load_op_fixtures();
  REQUIRE(cases.size() > 50);
  const std::vector<BackendRow> backends = rows();
  if (backends.empty()) WARN("only the reference backend is built: nothing beyond test_reference_ops to check");
  for (const BackendRow& row : backends) {
    INFO("backend " << row.backend << ", compute " << row.compute);
    runtime::BackendOptions options;
    options.compute = row.compute;
    auto backend = runtime::make_backend(row.backend, options);
    if (!backend.has_value() && backend.status().code() == StatusCode::kUnsupported) {
      WARN("skipped: " << backend.status().message());  // e.g. bf16 on a CPU without bf16 kernels
      continue;
    }
    INFO(backend.status().to_string());
    REQUIRE(backend.has_value());
    const GraphRunner run = [&](const ir::Graph& graph, const std::vector<ir::Tensor>& inputs)
        -> Expected<std::vector<ir::Tensor>> {
      COMPRESS_ASSIGN_OR_RETURN(std::unique_ptr<runtime::ExecutionPlan> plan, (*backend)->compile(graph));
      return plan->run(inputs);
    };
    for (const OpFixture& c : cases) check_fixture(c, row.bounds, run);
  }
}

}  // namespace compress::test

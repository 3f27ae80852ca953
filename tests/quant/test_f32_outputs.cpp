// Note [f32 outputs for f32 readers]: a layer whose output only f32 ops read writes f32 (no requantize, no
// dequantize), an activation after it stays in the graph, and the int8 graph still matches its fake-quant twin
// and the reference on onednn.
#include <catch2/catch.hpp>

#include "compress/eval/dataset.h"
#include "compress/ir/verifier.h"
#include "compress/quant/calibration.h"
#include "compress/quant/layer_plan.h"
#include "quant_test_util.h"

using namespace compress;
using namespace compress::quant_test;

namespace {

struct Converted {
  std::vector<quant::LayerQuant> layers;
  ir::Graph int8, fake;
};

Converted convert(const ir::Graph& g, const ir::Tensor& calib_samples) {
  auto data = eval::from_tensor(calib_samples, {}, "random").value();
  quant::CalibrationOptions opts;
  opts.progress = false;
  const auto nodes = quant::quantizable_nodes(g);
  auto calib = quant::calibrate(g, quant::values_to_observe(g, nodes), *data, opts).value();
  Converted c{quant::plan_layers(g, nodes, calib).value(), g.clone(), g.clone()};
  throw_if_error(quant::convert_to_int8(c.int8, c.layers));
  throw_if_error(quant::convert_to_fake_quant(c.fake, c.layers));
  return c;
}

const quant::LayerQuant& layer(const Converted& c, const std::string& name) {
  for (const auto& l : c.layers) {
    if (l.node == name) return l;
  }
  FAIL("no layer " << name);
  throw std::logic_error("unreachable");
}

// onednn_tolerance: 0 for int8 layers and exact ops; oneDNN's f32 gelu and
// softmax differ from the reference's in the last bits.
void check_runs(const ir::Graph& f32, const Converted& c, const ir::Tensor& x, float onednn_tolerance) {
  REQUIRE(ir::verify(c.int8).is_ok());
  REQUIRE(ir::verify(c.fake).is_ok());
  const ir::Tensor ref = run_graph(c.int8, "reference", x)[0];
  CHECK(max_abs_diff(run_graph(c.int8, "onednn", x)[0], ref) <= onednn_tolerance);
  const float quant_err = max_abs_diff(ref, run_graph(f32, "reference", x)[0]);
  const float sim_gap = max_abs_diff(ref, run_graph(c.fake, "reference", x)[0]);
  INFO("int8 vs f32 " << quant_err << ", fake-quant vs int8 " << sim_gap);
  CHECK(quant_err > 0.0f);
  CHECK(sim_gap <= 0.05f * quant_err);
}

ir::Value* linear(ir::Graph& g, ir::Value* x, int64_t in, int64_t out, uint64_t seed, const std::string& name) {
  return g
      .add_node("linear",
                {x, g.add_constant(name + ".weight", random_tensor({out, in}, seed)).value(),
                 g.add_constant(name + ".bias", random_tensor({out}, seed + 1)).value()},
                {}, name)
      .value()
      ->output();
}

}  // namespace

TEST_CASE("PTQ: a linear read only by gelu writes f32, and the linear after it reads a quantize of the gelu") {
  ir::Graph g;
  ir::Value* x = g.add_input("x", {ir::DType::kF32, {4, 16}, nullptr}).value();
  ir::Value* h = linear(g, x, 16, 32, 1, "fc1");
  ir::Value* a = g.add_node("gelu", {h}, {}, "gelu").value()->output();
  g.set_outputs({linear(g, a, 32, 8, 3, "fc2")});

  const Converted c = convert(g, random_tensor({64, 16}, 5, -2.0f, 2.0f));
  CHECK_FALSE(layer(c, "fc1").output_params.has_value());
  CHECK(c.int8.find_node("fc1")->attr_string("out_dtype") == "f32");
  CHECK(count_ops(c.int8, "dequantize") == 0);
  CHECK(count_ops(c.int8, "quantize") == 2);  // x, and gelu's output for fc2
  CHECK(count_ops(c.int8, "gelu") == 1);
  check_runs(g, c, random_tensor({4, 16}, 6, -2.0f, 2.0f), 1e-4f);
}

TEST_CASE("PTQ: a relu before a graph output or an f32 reader is not fused away") {
  for (const bool through_softmax : {false, true}) {
    INFO("through softmax " << through_softmax);
    ir::Graph g;
    ir::Value* x = g.add_input("x", {ir::DType::kF32, {4, 16}, nullptr}).value();
    ir::Value* h = linear(g, x, 16, 8, 7, "fc");
    ir::Value* r = g.add_node("relu", {h}, {}, "relu").value()->output();
    g.set_outputs({through_softmax ? g.add_node("softmax", {r}, {{"axis", int64_t{-1}}}, "softmax").value()->output()
                                   : r});

    const Converted c = convert(g, random_tensor({64, 16}, 8, -2.0f, 2.0f));
    CHECK(layer(c, "fc").relu.empty());
    CHECK_FALSE(layer(c, "fc").output_params.has_value());
    CHECK(count_ops(c.int8, "relu") == 1);
    const ir::Tensor in = random_tensor({4, 16}, 9, -2.0f, 2.0f);
    const ir::Tensor out = run_graph(c.int8, "reference", in)[0];
    if (!through_softmax) {
      // Negative pre-activations exist for these weights: without the relu they would reach the output.
      for (int64_t i = 0; i < out.numel(); ++i) REQUIRE(out.data<float>()[i] >= 0.0f);
    }
    check_runs(g, c, in, through_softmax ? 1e-6f : 0.0f);
  }
}

// A residual add whose only reader is a layer nothing reads: conversion makes
// it a qadd, then removes the dead layer and the qadd with it. The renaming
// of qadds after that must not touch the removed one (it did, through a
// dangling pointer; ASan in CI catches a regression).
TEST_CASE("PTQ: a qadd that only a dead layer reads is removed cleanly with it") {
  const auto build = [](bool dead) {
    ir::Graph g;
    ir::Value* x = g.add_input("x", {ir::DType::kF32, {4, 16}, nullptr}).value();
    ir::Value* h0 = linear(g, x, 16, 16, 21, "fc0");
    ir::Value* h1 = linear(g, h0, 16, 16, 23, "fc1");
    ir::Value* sum = g.add_node("add", {h1, h0}, {}, "residual").value()->output();
    ir::Value* last = linear(g, sum, 16, 8, 25, "dead_fc");
    ir::Value* out = g.add_node("sigmoid", {h1}, {}, "out").value()->output();
    g.set_outputs(dead ? std::vector<ir::Value*>{out} : std::vector<ir::Value*>{out, last});
    return g;
  };
  // Alive, the add is a qadd under the add's name: the dead case below does create one.
  const Converted alive = convert(build(false), random_tensor({64, 16}, 27, -2.0f, 2.0f));
  REQUIRE(alive.int8.find_node("residual") != nullptr);
  CHECK(alive.int8.find_node("residual")->op() == "qadd");

  const ir::Graph g = build(true);
  const Converted c = convert(g, random_tensor({64, 16}, 27, -2.0f, 2.0f));
  CHECK(c.int8.find_node("residual") == nullptr);
  CHECK(c.int8.find_node("dead_fc") == nullptr);
  CHECK(count_ops(c.int8, "qadd") == 0);
  CHECK(count_ops(c.int8, "qlinear") == 2);
  check_runs(g, c, random_tensor({4, 16}, 28, -2.0f, 2.0f), 1e-6f);
}

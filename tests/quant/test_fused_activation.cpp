// quant.ptq fuses relu6 and clamp(0, M) into the u8 output range (Note [Fusing ReLU6 and clamp(0, M)]).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>

#include "compress/eval/dataset.h"
#include "compress/ir/verifier.h"
#include "compress/quant/calibration.h"
#include "compress/quant/layer_plan.h"
#include "compress/quant/ptq_pass.h"
#include "compress/runtime/quant_arith.h"
#include "quant_test_util.h"

using namespace compress;
using namespace compress::quant_test;

namespace {

struct Act {
  std::string op;  // relu6 or clamp
  double max = 6.0;
};

ir::Node* add_act(ir::Graph& g, ir::Value* x, const Act& a, const std::string& name) {
  if (a.op == "relu6") return g.add_node("relu6", {x}, {}, name).value();
  return g.add_node("clamp", {x}, {{"min", 0.0}, {"max", a.max}}, name).value();
}

// conv1 -> act1 -> max_pool2d -> conv2 -> act2 -> flatten -> fc (graph output).
// conv1 writes u8 into the pool, which runs on u8 (Note [Max pooling on u8]);
// conv2 a u8 output that fc reads directly. Inputs in [-4, 4] with weights in
// [-1, 1] over 27 taps push conv1's pre-activation well past 6.
ir::Graph make_graph(const Act& act1, const Act& act2, float conv1_bias = 0.0f) {
  ir::Graph g;
  ir::Value* x = g.add_input("x", {ir::DType::kF32, {1, 3, 8, 8}, nullptr}).value();
  ir::Tensor b1 = random_tensor({8}, 12, -0.5f, 0.5f);
  if (conv1_bias != 0.0f) {
    for (int64_t i = 0; i < b1.numel(); ++i) b1.data<float>()[i] = conv1_bias;
  }
  const ir::AttributeMap pad1 = {{"padding", std::vector<int64_t>{1, 1, 1, 1}}};
  ir::Node* c1 = g.add_node("conv2d",
                            {x, g.add_constant("conv1.weight", random_tensor({8, 3, 3, 3}, 11)).value(),
                             g.add_constant("conv1.bias", b1).value()},
                            pad1, "conv1")
                     .value();
  ir::Node* a1 = add_act(g, c1->output(), act1, "act1");
  ir::Node* pool = g.add_node("max_pool2d", {a1->output()},
                              {{"kernel", std::vector<int64_t>{2, 2}}, {"stride", std::vector<int64_t>{2, 2}}}, "pool")
                       .value();
  ir::Node* c2 = g.add_node("conv2d",
                            {pool->output(), g.add_constant("conv2.weight", random_tensor({6, 8, 3, 3}, 13, -0.5f, 0.5f)).value(),
                             g.add_constant("conv2.bias", random_tensor({6}, 14)).value()},
                            pad1, "conv2")
                     .value();
  ir::Node* a2 = add_act(g, c2->output(), act2, "act2");
  ir::Node* flat = g.add_node("flatten", {a2->output()}, {}, "flatten").value();
  ir::Node* fc = g.add_node("linear",
                            {flat->output(), g.add_constant("fc.weight", random_tensor({5, 96}, 15, -0.3f, 0.3f)).value(),
                             g.add_constant("fc.bias", random_tensor({5}, 16)).value()},
                            {}, "fc")
                     .value();
  g.set_outputs({fc->output()});
  return g;
}

struct Variants {
  ir::Graph int8, int8_f32_pool, fake;
  std::vector<quant::LayerQuant> layers;
  quant::CalibrationResult calib;
};

Variants quantize(const ir::Graph& g, const ir::Tensor& calib_samples) {
  auto data = eval::from_tensor(calib_samples, {}, "random").value();
  quant::CalibrationOptions opts;
  opts.progress = false;
  const auto nodes = quant::quantizable_nodes(g);
  auto observe = quant::values_to_observe(g, nodes);
  observe.push_back("conv1");  // the pre-activation, for the test's own checks
  observe.push_back("conv2");
  Variants v{g.clone(), g.clone(), g.clone(), {}, {}};
  v.calib = quant::calibrate(g, observe, *data, opts).value();
  v.layers = quant::plan_layers(g, nodes, v.calib).value();
  throw_if_error(quant::convert_to_int8(v.int8, v.layers));
  quant::Int8Options f32_pool;
  f32_pool.pool_before_requantize = true;
  throw_if_error(quant::convert_to_int8(v.int8_f32_pool, v.layers, f32_pool));
  throw_if_error(quant::convert_to_fake_quant(v.fake, v.layers));
  return v;
}

// quantize(M) == 255 at zero point 0: the u8 clamp at 255 is the clamp at M.
bool clamps_at(const ir::QuantParams& p, float m) {
  return p.zero_points()[0] == 0 &&
         runtime::quantize_value(m, runtime::quant_inv_scale(p.scales()[0]), 0, p.qmin(), p.qmax()) == p.qmax();
}

// The checks every fused graph must pass: no f32 activation left, verifies,
// bit-identical on reference and onednn (and with the pool on f32 before
// requantizing, Note [Requantize after max pooling]), and the fake-quant twin within Note [Simulation vs
// deployment]'s bound (<= 0.05 absolute and <= 5% of the quantization error).
void check_fused(const ir::Graph& f32, const Variants& v, const ir::Tensor& x) {
  REQUIRE(ir::verify(v.int8).is_ok());
  REQUIRE(ir::verify(v.int8_f32_pool).is_ok());
  REQUIRE(ir::verify(v.fake).is_ok());
  CHECK(count_ops(v.int8, "relu6") == 0);
  CHECK(count_ops(v.int8, "clamp") == 0);
  CHECK(count_ops(v.int8, "qconv2d") == 2);
  CHECK(count_ops(v.int8, "dequantize") == 0);
  CHECK(count_ops(v.int8, "quantize") == 1);  // x only: the pool runs on conv1's u8 output
  for (const quant::LayerQuant& l : v.layers) CHECK(!l.relu.empty() == (l.node != "fc"));
  const ir::Tensor ref = run_graph(v.int8, "reference", x)[0];
  const ir::Tensor dnn = run_graph(v.int8, "onednn", x)[0];
  CHECK(ref.bitwise_equal(dnn));
  CHECK(run_graph(v.int8_f32_pool, "reference", x)[0].bitwise_equal(ref));
  const ir::Tensor sim = run_graph(v.fake, "reference", x)[0];
  const float sim_gap = max_abs_diff(ref, sim);
  const float quant_err = max_abs_diff(ref, run_graph(f32, "reference", x)[0]);
  INFO("fake-quant vs int8 " << sim_gap << ", int8 vs f32 " << quant_err);
  CHECK(quant_err > 0.0f);
  CHECK(sim_gap <= 0.05f);
  CHECK(sim_gap <= 0.05f * quant_err);
}

}  // namespace

TEST_CASE("PTQ fusion: conv+relu6 and conv+clamp(0, M) quantize without the f32 activation") {
  const Act relu6{"relu6"};
  const Act clamp3{"clamp", 3.0};
  const ir::Tensor calib = random_tensor({32, 3, 8, 8}, 21, -4.0f, 4.0f);
  const ir::Tensor x = random_tensor({16, 3, 8, 8}, 22, -4.0f, 4.0f);
  for (const auto& [a1, a2] : {std::pair{relu6, clamp3}, std::pair{clamp3, relu6}, std::pair{relu6, relu6}}) {
    INFO(a1.op << " " << a1.max << ", " << a2.op << " " << a2.max);
    const ir::Graph g = make_graph(a1, a2);
    const Variants v = quantize(g, calib);
    // The pre-activations exceed the clamp bounds: the fusion has to saturate.
    CHECK(v.calib.ranges.at("conv1").max > static_cast<float>(a1.max));
    CHECK(v.calib.ranges.at("conv2").max > static_cast<float>(a2.max));
    REQUIRE(v.layers.size() == 3);
    CHECK(v.layers[0].output == "act1");
    CHECK(v.layers[1].output == "act2");
    CHECK(clamps_at(*v.layers[0].output_params, static_cast<float>(a1.max)));
    CHECK(clamps_at(*v.layers[1].output_params, static_cast<float>(a2.max)));
    check_fused(g, v, x);
  }
}

TEST_CASE("PTQ fusion: a zero-width observed relu6 range gets [0, 6] params, not the scale fallback") {
  // conv -> relu6 -> flatten -> fc. The conv's bias -20 keeps its calibration
  // output negative, so relu6 observes only zeros: the fallback scale 1.0
  // would quantize 6 to 6, not 255, and a test input whose conv output
  // exceeds 6 would then give round(y) where relu6 gives 6. The planner uses
  // [0, 6] instead (scale 6/255).
  ir::Graph g;
  ir::Value* x = g.add_input("x", {ir::DType::kF32, {1, 3, 4, 4}, nullptr}).value();
  ir::Tensor bias = ir::Tensor::zeros(ir::DType::kF32, {4}).value();
  for (int64_t i = 0; i < 4; ++i) bias.data<float>()[i] = -20.0f;
  ir::Node* conv = g.add_node("conv2d",
                              {x, g.add_constant("conv.weight", random_tensor({4, 3, 3, 3}, 61)).value(),
                               g.add_constant("conv.bias", bias).value()},
                              {{"padding", std::vector<int64_t>{1, 1, 1, 1}}}, "conv")
                       .value();
  ir::Node* act = g.add_node("relu6", {conv->output()}, {}, "act").value();
  ir::Node* flat = g.add_node("flatten", {act->output()}, {}, "flatten").value();
  ir::Node* fc = g.add_node("linear", {flat->output(), g.add_constant("fc.weight", random_tensor({3, 64}, 62)).value()},
                            {}, "fc")
                     .value();
  g.set_outputs({fc->output()});
  // Calibration inputs in [-0.2, 0.2] plus one pixel at +-12, so the input
  // range covers the test inputs while the conv output stays below
  // 12 + 26 * 0.2 - 20 < 0.
  ir::Tensor calib_x = random_tensor({16, 3, 4, 4}, 63, -0.2f, 0.2f);
  calib_x.data<float>()[0] = 12.0f;
  calib_x.data<float>()[48] = -12.0f;
  auto data = eval::from_tensor(calib_x, {}, "random").value();
  quant::CalibrationOptions opts;
  opts.progress = false;
  const auto nodes = quant::quantizable_nodes(g);
  const auto calib = quant::calibrate(g, quant::values_to_observe(g, nodes), *data, opts).value();
  CHECK(calib.ranges.at("act").max == 0.0f);
  const auto layers = quant::plan_layers(g, nodes, calib).value();
  const ir::QuantParams& p = *layers[0].output_params;
  CHECK(p.scales()[0] == 6.0f / 255.0f);
  CHECK(clamps_at(p, 6.0f));
  ir::Graph int8 = g.clone(), fake = g.clone();
  throw_if_error(quant::convert_to_int8(int8, layers));
  throw_if_error(quant::convert_to_fake_quant(fake, layers));
  CHECK(count_ops(int8, "relu6") == 0);
  // Test inputs large enough to push the conv past -20 + 6 somewhere.
  const ir::Tensor xt = random_tensor({16, 3, 4, 4}, 64, -12.0f, 12.0f);
  const ir::Graph probe = [&] {
    ir::Graph c = g.clone();
    c.set_outputs({c.find_value("conv")});
    return c;
  }();
  const ir::Tensor pre = run_graph(probe, "reference", xt)[0];
  CHECK(*std::max_element(pre.data<float>(), pre.data<float>() + pre.numel()) > 7.0f);
  const ir::Tensor ref = run_graph(int8, "reference", xt)[0];
  CHECK(ref.bitwise_equal(run_graph(int8, "onednn", xt)[0]));
  CHECK(max_abs_diff(ref, run_graph(fake, "reference", xt)[0]) <= 0.05f);
}

TEST_CASE("PTQ fusion: clamp with min != 0 stays an f32 op between dequantize and quantize") {
  ir::Graph g = make_graph(Act{"relu6"}, Act{"relu6"});
  // Replace act2 (relu6) by clamp(-1, 1).
  ir::Node* act2 = g.find_node("act2");
  ir::Node* c = g.add_node("clamp", {act2->input(0)}, {{"min", -1.0}, {"max", 1.0}}, "act2_clamp", act2).value();
  g.replace_all_uses_with(act2->output(), c->output());
  throw_if_error(g.remove_node(act2));
  const Variants v = quantize(g, random_tensor({16, 3, 8, 8}, 41, -4.0f, 4.0f));
  REQUIRE(ir::verify(v.int8).is_ok());
  CHECK(count_ops(v.int8, "relu6") == 0);
  CHECK(count_ops(v.int8, "clamp") == 1);
  CHECK(v.layers[1].relu.empty());
  const ir::Tensor x = random_tensor({4, 3, 8, 8}, 42, -4.0f, 4.0f);
  CHECK(run_graph(v.int8, "reference", x)[0].bitwise_equal(run_graph(v.int8, "onednn", x)[0]));
}

TEST_CASE("PTQ pass: relu6 fusion is reported as relu_fused") {
  const ir::Graph g = make_graph(Act{"relu6"}, Act{"clamp", 2.5});
  auto data = eval::from_tensor(random_tensor({8, 3, 8, 8}, 51, -4.0f, 4.0f), {}, "random").value();
  pass::PassContext ctx;
  ctx.calibration = data.get();
  ctx.progress = false;
  ir::Graph q = g.clone();
  auto r = quant::PtqPass().run(q, ctx);
  REQUIRE(r.has_value());
  CHECK(r->layers.at("conv1").at("relu_fused") == 1.0);
  CHECK(r->layers.at("conv2").at("relu_fused") == 1.0);
  CHECK(r->layers.at("fc").at("relu_fused") == 0.0);
  CHECK(count_ops(q, "relu6") == 0);
  CHECK(count_ops(q, "clamp") == 0);
}

// quant.sensitivity and quant.ptq's max_drop: the layer that is hard to quantize is found and kept in f32.
#include <catch2/catch.hpp>

#include <cmath>

#include "compress/ir/verifier.h"
#include "compress/pass/registry.h"
#include "compress/quant/sensitivity.h"
#include "quant_test_util.h"

using namespace compress;
using namespace compress::quant_test;

namespace {

// x [1, 8] -> a -> relu -> b -> relu -> c -> output. Input channel 3 of b
// is dead (a's row 3 is all zero) but b's column 3 holds weights of 100,
// and the live weights are 0.2..0.35: per-channel s8 gives each row of b the
// step 100/127 = 0.79, so every live weight rounds to 0 and b alone loses
// nearly its whole output, while a and c are ordinary layers.
ir::Graph three_linears() {
  ir::Graph g;
  ir::Value* x = g.add_input("x", {ir::DType::kF32, {1, 8}, nullptr}).value();
  ir::Tensor wa = random_tensor({8, 8}, 1);
  for (int64_t i = 0; i < 8; ++i) wa.data<float>()[3 * 8 + i] = 0.0f;
  ir::Tensor wb = random_tensor({8, 8}, 2, 0.2f, 0.35f);
  for (int64_t r = 0; r < 8; ++r) wb.data<float>()[r * 8 + 3] = 100.0f;
  ir::Node* a = g.add_node("linear", {x, g.add_constant("a.weight", wa).value()}, {}, "a").value();
  ir::Node* ra = g.add_node("relu", {a->output()}, {}, "ra").value();
  ir::Node* b = g.add_node("linear", {ra->output(), g.add_constant("b.weight", wb).value()}, {}, "b").value();
  ir::Node* rb = g.add_node("relu", {b->output()}, {}, "rb").value();
  ir::Node* c = g.add_node("linear", {rb->output(), g.add_constant("c.weight", random_tensor({4, 8}, 3)).value()}, {}, "c")
                    .value();
  g.set_outputs({c->output()});
  return g;
}

// Higher is better: minus the mean |output - f32 output| relative to the mean |f32 output|, in percent.
quant::Metric error_metric(const ir::Graph& reference, const ir::Tensor& x) {
  const ir::Tensor ref = run_graph(reference, "reference", x)[0];
  return [ref, x](const ir::Graph& g) -> Expected<double> {
    const ir::Tensor y = run_graph(g, "reference", x)[0];
    double scale = 0.0;
    for (int64_t i = 0; i < ref.numel(); ++i) scale += std::abs(ref.data<float>()[i]);
    return -100.0 * mean_abs_diff(y, ref) / (scale / static_cast<double>(ref.numel()));
  };
}

}  // namespace

TEST_CASE("quant.sensitivity: the badly quantizable layer ranks first, the graph is unchanged") {
  const ir::Graph g = three_linears();
  auto calib = eval::from_tensor(random_tensor({64, 8}, 4), {}, "calib").value();
  const ir::Tensor x = random_tensor({64, 8}, 5);
  pass::PassContext ctx;
  ctx.calibration = calib.get();
  ctx.progress = false;
  ctx.metric = error_metric(g, x);
  ir::Graph s = g.clone();
  auto r = quant::SensitivityPass().run(s, ctx);
  REQUIRE(r.has_value());
  CHECK_FALSE(r->changed);
  CHECK(count_ops(s, "qlinear") == 0);
  CHECK(r->counters.at("baseline") == 0.0);
  const auto& b = r->layers.at("b");
  WARN("drops: a " << r->layers.at("a").at("sensitivity_drop") << ", b " << b.at("sensitivity_drop") << ", c "
                   << r->layers.at("c").at("sensitivity_drop"));
  CHECK(b.at("sensitivity_rank") == 1.0);
  CHECK(b.at("sensitivity_drop") > 5 * r->layers.at("a").at("sensitivity_drop"));
  CHECK(b.at("sensitivity_drop") > 5 * r->layers.at("c").at("sensitivity_drop"));

  pass::PassContext no_metric;
  no_metric.calibration = calib.get();
  auto bad = quant::SensitivityPass().run(s, no_metric);
  REQUIRE_FALSE(bad.has_value());
  CHECK_THAT(bad.status().message(), Catch::Contains("metric"));
}

TEST_CASE("quant.ptq max_drop: keeps the most sensitive layer in f32 until the budget is met") {
  const ir::Graph g = three_linears();
  auto calib = eval::from_tensor(random_tensor({64, 8}, 4), {}, "calib").value();
  const ir::Tensor x = random_tensor({64, 8}, 5);
  const quant::Metric metric = error_metric(g, x);
  const double all_quantized = -metric(ptq(g, *calib)).value();
  quant::PtqPass::Options but_b;
  but_b.keep_f32 = {"b"};
  const double without_b = -metric(ptq(g, *calib, but_b)).value();
  WARN("metric drop: all quantized " << all_quantized << ", b kept f32 " << without_b);
  REQUIRE(without_b < all_quantized / 5);

  pass::PassRegistry registry;
  REQUIRE(quant::register_quant_passes(registry).is_ok());
  pass::PassContext ctx;
  ctx.calibration = calib.get();
  ctx.progress = false;
  ctx.metric = metric;
  const std::string budget = std::to_string(2 * without_b);
  auto p = registry.create("quant.ptq", pass::PassOptions::from_pairs({{"max_drop", budget}}, "test").value());
  REQUIRE(p.has_value());
  ir::Graph q = g.clone();
  auto r = (*p)->run(q, ctx);
  REQUIRE(r.has_value());
  REQUIRE(ir::verify(q).is_ok());
  CHECK(r->counters.at("kept_f32") == 1.0);
  CHECK(r->layers.at("b").at("kept_f32") == 1.0);
  CHECK(q.find_node("b")->op() == "linear");
  CHECK(q.find_node("a")->op() == "qlinear");
  CHECK(q.find_node("c")->op() == "qlinear");
  CHECK(-r->counters.at("metric_quantized") <= 2 * without_b);
  CHECK(-metric(q).value() == Approx(-r->counters.at("metric_quantized")));

  // With bias correction, only the quantized layers get corrected biases:
  // b, kept in f32, keeps having none.
  ir::Graph corrected = g.clone();
  quant::PtqPass::Options bc;
  bc.max_drop = 2 * without_b;
  bc.bias_correction = true;
  auto rc = quant::PtqPass(bc).run(corrected, ctx);
  REQUIRE(rc.has_value());
  CHECK(rc->layers.at("b").at("kept_f32") == 1.0);
  CHECK(corrected.find_node("b")->num_inputs() == 2);
  CHECK(corrected.find_node("a")->num_inputs() == 3);
  CHECK(corrected.find_node("c")->num_inputs() == 3);

  // A budget the all-int8 graph meets keeps nothing; a budget of 0 keeps every layer.
  ir::Graph loose = g.clone();
  quant::PtqPass::Options o;
  o.max_drop = 2 * all_quantized;
  auto rl = quant::PtqPass(o).run(loose, ctx);
  REQUIRE(rl.has_value());
  CHECK(rl->counters.at("kept_f32") == 0.0);
  CHECK(count_ops(loose, "qlinear") == 3);
  ir::Graph tight = g.clone();
  o.max_drop = 0.0;
  auto rt = quant::PtqPass(o).run(tight, ctx);
  REQUIRE(rt.has_value());
  CHECK(rt->counters.at("kept_f32") == 3.0);
  CHECK(count_ops(tight, "qlinear") == 0);
  CHECK(ir::verify(tight).is_ok());

  pass::PassContext no_metric;
  no_metric.calibration = calib.get();
  no_metric.progress = false;
  ir::Graph q2 = g.clone();
  auto bad = quant::PtqPass(o).run(q2, no_metric);
  REQUIRE_FALSE(bad.has_value());
  CHECK_THAT(bad.status().message(), Catch::Contains("max_drop"));
  CHECK_FALSE(registry.create("quant.ptq", pass::PassOptions::from_pairs({{"max_drop", "-1"}}, "test").value())
                  .has_value());
}

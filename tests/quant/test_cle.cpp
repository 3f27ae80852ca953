// quant.cle: fp32 outputs preserved, channel ranges equalized, int8 error reduced.
#include <catch2/catch.hpp>

#include <cmath>

#include "compress/ir/verifier.h"
#include "compress/pass/registry.h"
#include "compress/quant/cle_pass.h"
#include "quant_test_util.h"

using namespace compress;
using namespace compress::quant_test;

namespace {

// conv1 (3 -> 8, 3x3) -> relu -> depthwise 3x3 (8 groups) -> relu -> conv3 (8 -> 4, 1x1).
// Output channel c of conv1 is scaled by a[c] and the depthwise weights of
// channel c by d[c] / a[c], conv3's input channel c by 1 / d[c] (the
// depthwise bias by d[c]): the same function as the balanced network, with
// channel ranges that differ by 10^4, which per-tensor activations cannot hold.
ir::Graph badly_scaled(bool scale) {
  const float a[8] = {0.01f, 100.0f, 1.0f, 0.05f, 20.0f, 0.3f, 5.0f, 0.002f};
  const float d[8] = {10.0f, 0.1f, 1.0f, 0.02f, 3.0f, 1.0f, 0.5f, 40.0f};
  ir::Tensor w1 = random_tensor({8, 3, 3, 3}, 1), b1 = random_tensor({8}, 2, -0.2f, 0.2f);
  ir::Tensor w2 = random_tensor({8, 1, 3, 3}, 3), b2 = random_tensor({8}, 4, -0.2f, 0.2f);
  ir::Tensor w3 = random_tensor({4, 8, 1, 1}, 5), b3 = random_tensor({4}, 6);
  if (scale) {
    for (int c = 0; c < 8; ++c) {
      for (int i = 0; i < 27; ++i) w1.data<float>()[c * 27 + i] *= a[c];
      b1.data<float>()[c] *= a[c];
      for (int i = 0; i < 9; ++i) w2.data<float>()[c * 9 + i] *= d[c] / a[c];
      b2.data<float>()[c] *= d[c];
      for (int o = 0; o < 4; ++o) w3.data<float>()[o * 8 + c] /= d[c];
    }
  }
  ir::Graph g;
  ir::Value* x = g.add_input("x", {ir::DType::kF32, {1, 3, 8, 8}, nullptr}).value();
  const ir::AttributeMap pad{{"padding", std::vector<int64_t>{1, 1, 1, 1}}};
  ir::Node* c1 = g.add_node("conv2d", {x, g.add_constant("c1.weight", w1).value(), g.add_constant("c1.bias", b1).value()},
                            pad, "c1")
                     .value();
  ir::Node* r1 = g.add_node("relu", {c1->output()}, {}, "r1").value();
  ir::AttributeMap dw = pad;
  dw["groups"] = int64_t{8};
  ir::Node* c2 = g.add_node("conv2d",
                            {r1->output(), g.add_constant("c2.weight", w2).value(), g.add_constant("c2.bias", b2).value()},
                            dw, "c2")
                     .value();
  ir::Node* r2 = g.add_node("relu", {c2->output()}, {}, "r2").value();
  ir::Node* c3 = g.add_node("conv2d",
                            {r2->output(), g.add_constant("c3.weight", w3).value(), g.add_constant("c3.bias", b3).value()},
                            {}, "c3")
                     .value();
  g.set_outputs({c3->output()});
  return g;
}

double channel_range(const ir::Tensor& w, int64_t c) {
  const int64_t per = w.numel() / w.dim(0);
  double m = 0.0;
  for (int64_t i = 0; i < per; ++i) m = std::max(m, std::abs(double(w.data<float>()[c * per + i])));
  return m;
}

}  // namespace

TEST_CASE("quant.cle: conv -> relu -> depthwise -> relu -> conv keeps fp32 outputs and equalizes ranges") {
  const ir::Graph g = badly_scaled(true);
  ir::Graph e = g.clone();
  pass::PassContext ctx;
  auto r = quant::CrossLayerEqualizationPass().run(e, ctx);
  REQUIRE(r.has_value());
  REQUIRE(ir::verify(e).is_ok());
  CHECK(r->changed);
  CHECK(r->counters.at("pairs") == 2.0);
  const ir::Tensor x = random_tensor({16, 3, 8, 8}, 7);
  const ir::Tensor y0 = run_graph(g, "reference", x)[0];
  const ir::Tensor y1 = run_graph(e, "reference", x)[0];
  CHECK(rel_max_diff(y1, y0) < 1e-5);
  // Converged: the first layer's output-channel range equals the second's
  // input-channel range (depthwise: its own channel), for both pairs.
  const ir::Tensor& w1 = e.find_node("c1")->input(1)->constant();
  const ir::Tensor& w2 = e.find_node("c2")->input(1)->constant();
  const ir::Tensor& w3 = e.find_node("c3")->input(1)->constant();
  for (int64_t c = 0; c < 8; ++c) {
    CHECK(channel_range(w1, c) == Approx(channel_range(w2, c)).epsilon(1e-4));
    double r3 = 0.0;
    for (int64_t o = 0; o < 4; ++o) r3 = std::max(r3, std::abs(double(w3.data<float>()[o * 8 + c])));
    CHECK(channel_range(w2, c) == Approx(r3).epsilon(1e-3));
  }
}

TEST_CASE("quant.cle: int8 error on badly scaled channels drops") {
  const ir::Graph g = badly_scaled(true);
  ir::Graph e = g.clone();
  pass::PassContext ctx;
  REQUIRE(quant::CrossLayerEqualizationPass().run(e, ctx).has_value());
  auto calib = eval::from_tensor(random_tensor({64, 3, 8, 8}, 8), {}, "calib").value();
  const ir::Tensor x = random_tensor({32, 3, 8, 8}, 9);
  const ir::Tensor ref = run_graph(g, "reference", x)[0];
  const double before = mean_abs_diff(run_graph(ptq(g, *calib), "reference", x)[0], ref);
  const double after = mean_abs_diff(run_graph(ptq(e, *calib), "reference", x)[0], ref);
  // The balanced network (no bad scales at all) is the best CLE can reach.
  const ir::Graph balanced = badly_scaled(false);
  const ir::Tensor ref_b = run_graph(balanced, "reference", x)[0];
  const double ideal = mean_abs_diff(run_graph(ptq(balanced, *calib), "reference", x)[0], ref_b);
  WARN("int8 mean |error|: before CLE " << before << ", after " << after << ", balanced network " << ideal);
  CHECK(after < before / 4);
}

TEST_CASE("quant.cle: linear -> relu -> linear, a pruned channel keeps its scale, registry options") {
  ir::Graph g;
  ir::Value* x = g.add_input("x", {ir::DType::kF32, {1, 6}, nullptr}).value();
  ir::Tensor w1 = random_tensor({5, 6}, 1), w2 = random_tensor({3, 5}, 2);
  for (int i = 0; i < 6; ++i) w1.data<float>()[1 * 6 + i] *= 50.0f;  // a loud channel
  for (int i = 0; i < 6; ++i) w1.data<float>()[3 * 6 + i] = 0.0f;    // a pruned channel
  ir::Node* a = g.add_node("linear", {x, g.add_constant("a.weight", w1).value()}, {}, "a").value();
  ir::Node* r = g.add_node("relu", {a->output()}, {}, "r").value();
  ir::Node* b = g.add_node("linear", {r->output(), g.add_constant("b.weight", w2).value()}, {}, "b").value();
  g.set_outputs({b->output()});

  pass::PassRegistry registry;
  REQUIRE(quant::register_quant_passes(registry).is_ok());
  auto opts = pass::PassOptions::from_pairs({{"iterations", "5"}}, "test").value();
  auto p = registry.create("quant.cle", opts);
  REQUIRE(p.has_value());
  ir::Graph e = g.clone();
  pass::PassContext ctx;
  auto res = (*p)->run(e, ctx);
  REQUIRE(res.has_value());
  CHECK(res->counters.at("dead_channels") == 1.0);
  const ir::Tensor xs = random_tensor({8, 6}, 3);
  CHECK(rel_max_diff(run_graph(e, "reference", xs)[0], run_graph(g, "reference", xs)[0]) < 1e-5);
  const ir::Tensor& e1 = e.find_node("a")->input(1)->constant();
  for (int i = 0; i < 6; ++i) CHECK(e1.data<float>()[3 * 6 + i] == 0.0f);
  CHECK(channel_range(e1, 1) < 50.0 * channel_range(g.find_node("a")->input(1)->constant(), 0));
  CHECK_FALSE(registry.create("quant.cle", pass::PassOptions::from_pairs({{"iterations", "0"}}, "test").value())
                  .has_value());
}

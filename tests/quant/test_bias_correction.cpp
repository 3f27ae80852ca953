// quant.bias_correction: the int8 graph's mean output error drops.
#include <catch2/catch.hpp>

#include <cmath>

#include "compress/ir/verifier.h"
#include "compress/pass/registry.h"
#include "compress/quant/bias_correction_pass.h"
#include "quant_test_util.h"

using namespace compress;
using namespace compress::quant_test;

namespace {

// Weights whose int8 rounding errors do not cancel: per output channel one
// weight of 1.27 (scale 0.01) and the rest 0.004 (0.4 steps, which round
// to 0). With inputs in [0, 1] (mean 0.5) every output is short by
// 0.004 * 0.5 per such weight on average.
ir::Tensor skewed_weight(ir::Shape shape, uint64_t seed) {
  ir::Tensor w = random_tensor(shape, seed, 0.0035f, 0.0045f);
  const int64_t per = w.numel() / w.dim(0);
  for (int64_t c = 0; c < w.dim(0); ++c) w.data<float>()[c * per + c % per] = c % 2 ? 1.27f : -1.27f;
  return w;
}

// Mean over channels of |mean over samples and positions of (a - b)| (channel axis `axis`).
double mean_signed_error(const ir::Tensor& a, const ir::Tensor& b, int axis) {
  const int64_t channels = a.dim(axis);
  int64_t inner = 1;
  for (size_t d = static_cast<size_t>(axis) + 1; d < a.shape().size(); ++d) inner *= a.dim(static_cast<int>(d));
  std::vector<double> sum(static_cast<size_t>(channels), 0.0);
  for (int64_t i = 0; i < a.numel(); ++i) {
    sum[static_cast<size_t>((i / inner) % channels)] += double(a.data<float>()[i]) - b.data<float>()[i];
  }
  double total = 0.0;
  for (double s : sum) total += std::abs(s) / static_cast<double>(a.numel() / channels);
  return total / static_cast<double>(channels);
}

}  // namespace

TEST_CASE("quant.bias_correction: linear and conv, int8 mean output error drops") {
  for (bool conv : {false, true}) {
    ir::Graph g;
    ir::Node* layer = nullptr;
    if (conv) {
      ir::Value* x = g.add_input("x", {ir::DType::kF32, {1, 4, 6, 6}, nullptr}).value();
      layer = g.add_node("conv2d", {x, g.add_constant("w", skewed_weight({6, 4, 3, 3}, 1)).value()},
                         {{"padding", std::vector<int64_t>{1, 1, 1, 1}}}, "layer")
                  .value();
    } else {
      ir::Value* x = g.add_input("x", {ir::DType::kF32, {1, 32}, nullptr}).value();
      layer = g.add_node("linear", {x, g.add_constant("w", skewed_weight({6, 32}, 1)).value(),
                                    g.add_constant("b", random_tensor({6}, 2)).value()},
                         {}, "layer")
                  .value();
    }
    g.set_outputs({layer->output()});
    const ir::Shape sample_shape = conv ? ir::Shape{128, 4, 6, 6} : ir::Shape{128, 32};
    auto calib = eval::from_tensor(random_tensor(sample_shape, 3, 0.0f, 1.0f), {}, "calib").value();
    ir::Tensor x = random_tensor(sample_shape, 4, 0.0f, 1.0f);

    ir::Graph corrected = g.clone();
    pass::PassContext ctx;
    ctx.calibration = calib.get();
    ctx.progress = false;
    auto r = quant::BiasCorrectionPass().run(corrected, ctx);
    REQUIRE(r.has_value());
    REQUIRE(ir::verify(corrected).is_ok());
    CHECK(corrected.find_node("layer")->num_inputs() == 3);  // a bias was added to the conv
    const ir::Tensor ref = run_graph(g, "reference", x)[0];
    const double before = mean_signed_error(run_graph(ptq(g, *calib), "reference", x)[0], ref, 1);
    const double after = mean_signed_error(run_graph(ptq(corrected, *calib), "reference", x)[0], ref, 1);
    WARN((conv ? "conv" : "linear") << ": int8 mean output error per channel before " << before << ", after " << after
                                    << " (correction max " << r->layers.at("layer").at("bias_correction_max") << ")");
    CHECK(before > 0.01);
    CHECK(after < before / 5);

    // The same through quant.ptq's option, from the registry.
    pass::PassRegistry registry;
    REQUIRE(quant::register_quant_passes(registry).is_ok());
    auto p = registry.create("quant.ptq", pass::PassOptions::from_pairs({{"bias_correction", "true"}}, "test").value());
    REQUIRE(p.has_value());
    ir::Graph q = g.clone();
    auto res = (*p)->run(q, ctx);
    REQUIRE(res.has_value());
    CHECK(res->layers.at("layer").count("bias_correction_max") == 1);
    const double via_ptq = mean_signed_error(run_graph(q, "reference", x)[0], ref, 1);
    CHECK(via_ptq == Approx(after).margin(1e-6));
  }
}

TEST_CASE("quant.bias_correction: no calibration data and unknown keep_f32 are errors") {
  ir::Graph g;
  ir::Value* x = g.add_input("x", {ir::DType::kF32, {1, 4}, nullptr}).value();
  ir::Node* fc = g.add_node("linear", {x, g.add_constant("w", random_tensor({3, 4}, 1)).value()}, {}, "fc").value();
  g.set_outputs({fc->output()});
  pass::PassContext ctx;
  auto missing = quant::BiasCorrectionPass().run(g, ctx);
  REQUIRE_FALSE(missing.has_value());
  CHECK_THAT(missing.status().message(), Catch::Contains("calibration"));
  quant::BiasCorrectionPass::Options o;
  o.keep_f32 = {"nope"};
  auto bad = quant::BiasCorrectionPass(o).run(g, ctx);
  REQUIRE_FALSE(bad.has_value());
  CHECK_THAT(bad.status().message(), Catch::Contains("nope"));
}

// quant.ptq's weight_granularity: per_tensor gives one s8 scale max|w|/127 per weight.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>

#include "compress/eval/dataset.h"
#include "compress/eval/metrics.h"
#include "compress/io/cmf.h"
#include "compress/ir/verifier.h"
#include "compress/pass/registry.h"
#include "compress/quant/bias_correction_pass.h"
#include "compress/quant/calibration.h"
#include "compress/quant/layer_plan.h"
#include "compress/quant/ptq_pass.h"
#include "compress/quant/scheme.h"
#include "compress/quant/sensitivity.h"
#include "compress/transforms/fold_batch_norm.h"
#include "fashion_fixture.h"
#include "quant_test_util.h"

using namespace compress;
using namespace compress::quant_test;

namespace {

// The per-channel target (within 0.3 points of fp32's 90.35%); measured
// 90.36% (docs/quantization.md).
constexpr double kPerTensorTop1Min = 90.35 - 0.3;

float max_abs(const ir::Tensor& t) {
  float m = 0.0f;
  for (int64_t i = 0; i < t.numel(); ++i) m = std::max(m, std::fabs(t.data<float>()[i]));
  return m;
}

// The fixture planned with per-tensor weights (fashion_fixture.h).
const FashionFixture& per_tensor_fixture() { return fashion_fixture(quant::WeightGranularity::kPerTensor); }

}  // namespace

TEST_CASE("weight_params per tensor: one scale max|w|/127, values round to nearest in [-127, 127]") {
  ir::Tensor w = random_tensor({5, 3, 3, 3}, 11, -0.5f, 0.5f);
  w.data<float>()[17] = -2.54f;  // the tensor's max |w|, in channel 0
  auto p = quant::weight_params(w, "w", quant::WeightGranularity::kPerTensor);
  REQUIRE(p.has_value());
  CHECK(p->granularity() == ir::QuantGranularity::kPerTensor);
  REQUIRE(p->scales().size() == 1);
  CHECK(p->scales()[0] == 2.54f / 127.0f);
  CHECK(p->zero_points() == std::vector<int32_t>{0});
  CHECK(p->qmin() == -127);
  CHECK(p->qmax() == 127);
  auto q = quant::quantize_tensor(w, *p);
  REQUIRE(q.has_value());
  CHECK(q->data<int8_t>()[17] == -127);
  for (int64_t i = 0; i < w.numel(); ++i) {
    const double steps = static_cast<double>(w.data<float>()[i]) / p->scales()[0];
    REQUIRE(std::abs(q->data<int8_t>()[i] - steps) <= 0.5 + 1e-4);
  }
  // The default stays per channel: 5 scales, the largest the per-tensor one.
  auto pc = quant::weight_params(w, "w");
  REQUIRE(pc.has_value());
  CHECK(pc->granularity() == ir::QuantGranularity::kPerAxis);
  CHECK(pc->scales().size() == 5);
  CHECK(*std::max_element(pc->scales().begin(), pc->scales().end()) == p->scales()[0]);
  // All-zero weight: the fallback scale, not a zero scale.
  auto z = quant::weight_params(ir::Tensor::zeros(ir::DType::kF32, {2, 4}).value(), "z",
                                quant::WeightGranularity::kPerTensor);
  REQUIRE(z.has_value());
  CHECK(z->scales()[0] == quant::kFallbackScale);
}

TEST_CASE("PTQ per-tensor fixture: one weight scale per layer, bit-exact on reference and onednn") {
  const FashionFixture& f = per_tensor_fixture();
  REQUIRE(ir::verify(f.int8).is_ok());
  REQUIRE(ir::verify(f.fake).is_ok());
  REQUIRE(f.layers.size() == 4);
  for (const quant::LayerQuant& l : f.layers) {
    const ir::Tensor& w = f.f32.find_node(l.node)->input(1)->constant();
    CHECK(l.weight_params.granularity() == ir::QuantGranularity::kPerTensor);
    REQUIRE(l.weight_params.scales().size() == 1);
    CHECK(l.weight_params.scales()[0] == max_abs(w) / 127.0f);
    const ir::Value* wq = f.int8.find_node(l.node)->input(1);
    REQUIRE(wq->is_constant());
    CHECK(wq->dtype() == ir::DType::kI8);
    CHECK(wq->type().quant->granularity() == ir::QuantGranularity::kPerTensor);
  }
  const ir::Tensor x = fashion_test_images(256);
  const ir::Tensor ref = run_graph(f.int8, "reference", x)[0];
  const ir::Tensor dnn = run_graph(f.int8, "onednn", x)[0];
  CHECK(ref.bitwise_equal(dnn));
  for (int64_t i = 0; i < ref.numel(); ++i) REQUIRE(std::isfinite(ref.data<float>()[i]));
}

// Note [Simulation vs deployment] (test_ptq.cpp) with per-tensor weights.
// Per channel no requantized value of 1000 images straddles a rounding
// boundary (max logit gap 1.9e-6); per tensor a few do: the logits of 9 of
// 1000 images differ, by at most 0.0145, which is 6.4% of the int8-vs-f32
// error (0.226), above test_ptq's 5%-of-quantization-error bound. The
// absolute bound and the argmax bound of test_ptq hold and are asserted; the
// ratio is bounded at 10% and the affected images at 2%.
TEST_CASE("PTQ per-tensor fixture: fake-quant simulation agrees with the int8 graph") {
  const FashionFixture& f = per_tensor_fixture();
  const ir::Tensor x = fashion_test_images(1000);
  const SimulationGap gap = simulation_gap(run_graph(f.int8, "onednn", x)[0], run_graph(f.fake, "reference", x)[0],
                                           run_graph(f.f32, "reference", x)[0]);
  const float sim_gap = gap.max_gap, quant_err = gap.quant_err;
  const int64_t argmax_differs = gap.argmax_differs, images_differ = gap.images_differ;
  WARN("per-tensor fake-quant vs int8: max |logit diff| " << sim_gap << ", argmax differs on " << argmax_differs
                                                          << "/1000; logits differ (> 1e-4) on " << images_differ
                                                          << "/1000 images; int8 vs f32 max |diff| " << quant_err);
  CHECK(sim_gap <= 0.05f);
  CHECK(sim_gap <= 0.1f * quant_err);
  CHECK(images_differ <= 20);
  CHECK(argmax_differs <= 1);
}

TEST_CASE("PTQ per-tensor fixture: int8 top-1 on Fashion-MNIST test") {
  const FashionFixture& f = per_tensor_fixture();
  auto result = fashion_top1(f.int8);
  REQUIRE(result.has_value());
  WARN("fashion_cnn int8 (minmax, per-tensor weights, 512 calibration images) top-1 "
       << result->top1() << "% (" << result->correct << "/10000)");
  CHECK(result->samples == 10000);
  CHECK(result->top1() >= kPerTensorTop1Min);
}

TEST_CASE("quant.ptq weight_granularity: per_tensor through the pass, a bad value names the option") {
  auto parse = [](const std::string& value) {
    return quant::PtqPass::parse_options(pass::PassOptions::from_pairs({{"weight_granularity", value}}, "test").value());
  };
  CHECK(quant::PtqPass::parse_options(pass::PassOptions::from_pairs({}, "test").value())->weight_granularity ==
        quant::WeightGranularity::kPerChannel);
  REQUIRE(parse("per_tensor").has_value());
  CHECK(parse("per_tensor")->weight_granularity == quant::WeightGranularity::kPerTensor);
  CHECK(parse("per_channel")->weight_granularity == quant::WeightGranularity::kPerChannel);
  auto bad = parse("per_row");
  REQUIRE_FALSE(bad.has_value());
  CHECK_THAT(bad.status().message(), Catch::Contains("weight_granularity"));
  CHECK_THAT(bad.status().message(), Catch::Contains("per_row"));
  auto bad_sens =
      quant::SensitivityPass::parse_options(pass::PassOptions::from_pairs({{"weight_granularity", "per_row"}}, "t").value());
  CHECK_FALSE(bad_sens.has_value());

  // The pass itself: every layer reports a single weight scale.
  ir::Graph g;
  ir::Value* x = g.add_input("x", {ir::DType::kF32, {1, 8}, nullptr}).value();
  ir::Node* fc = g.add_node("linear", {x, g.add_constant("w", random_tensor({4, 8}, 5)).value()}, {}, "fc").value();
  g.set_outputs({fc->output()});
  auto calib = eval::from_tensor(random_tensor({32, 8}, 6), {}, "calib").value();
  pass::PassContext ctx;
  ctx.calibration = calib.get();
  ctx.progress = false;
  quant::PtqPass::Options o;
  o.weight_granularity = quant::WeightGranularity::kPerTensor;
  auto r = quant::PtqPass(o).run(g, ctx);
  REQUIRE(r.has_value());
  CHECK(r->layers.at("fc").at("weight_scale_min") == r->layers.at("fc").at("weight_scale_max"));
  CHECK(g.find_node("fc")->input(1)->type().quant->granularity() == ir::QuantGranularity::kPerTensor);
}

// Channel 0 holds the largest weight (1.27, per-tensor scale 0.01); the
// other channels peak at 0.127 (per-channel scale 0.001). Their many small
// weights of ~0.004 are ~4 steps per channel (rounding errors that cancel)
// but 0.4 steps per tensor: they all round to 0 and every output of those
// channels is short by about 31 * 0.004 * E[x]. Only a correction measured
// with per-tensor Q(W) removes that.
TEST_CASE("quant.ptq per_tensor with bias_correction: the correction uses per-tensor Q(W)") {
  ir::Tensor w = random_tensor({6, 32}, 7, 0.0035f, 0.0045f);
  w.data<float>()[0] = 1.27f;
  for (int64_t c = 1; c < 6; ++c) w.data<float>()[c * 32 + c] = 0.127f;
  ir::Graph g;
  ir::Value* x = g.add_input("x", {ir::DType::kF32, {1, 32}, nullptr}).value();
  ir::Node* fc = g.add_node("linear", {x, g.add_constant("w", w).value(), g.add_constant("b", random_tensor({6}, 8)).value()},
                            {}, "fc")
                     .value();
  g.set_outputs({fc->output()});
  auto calib = eval::from_tensor(random_tensor({128, 32}, 9, 0.0f, 1.0f), {}, "calib").value();
  const ir::Tensor xs = random_tensor({128, 32}, 10, 0.0f, 1.0f);
  const ir::Tensor ref = run_graph(g, "reference", xs)[0];
  auto mean_error = [&](const ir::Graph& q) {  // mean over channels of |mean signed output error|
    const ir::Tensor y = run_graph(q, "reference", xs)[0];
    double total = 0.0;
    for (int64_t c = 0; c < 6; ++c) {
      double s = 0.0;
      for (int64_t n = 0; n < y.dim(0); ++n) s += double(y.data<float>()[n * 6 + c]) - ref.data<float>()[n * 6 + c];
      total += std::abs(s) / static_cast<double>(y.dim(0));
    }
    return total / 6.0;
  };
  quant::PtqPass::Options per_tensor;
  per_tensor.weight_granularity = quant::WeightGranularity::kPerTensor;
  const double plain = mean_error(ptq(g, *calib, per_tensor));
  quant::PtqPass::Options corrected = per_tensor;
  corrected.bias_correction = true;
  const double with_correction = mean_error(ptq(g, *calib, corrected));
  // A correction measured with per-channel Q(W) (quant.bias_correction's
  // default) barely helps the per-tensor graph.
  ir::Graph mismatched = g.clone();
  pass::PassContext ctx;
  ctx.calibration = calib.get();
  ctx.progress = false;
  REQUIRE(quant::BiasCorrectionPass().run(mismatched, ctx).has_value());
  const double with_mismatched = mean_error(ptq(mismatched, *calib, per_tensor));
  // quant.bias_correction with weight_granularity: per_tensor matches quant.ptq's own.
  quant::BiasCorrectionPass::Options bo;
  bo.weight_granularity = quant::WeightGranularity::kPerTensor;
  ir::Graph matched = g.clone();
  REQUIRE(quant::BiasCorrectionPass(bo).run(matched, ctx).has_value());
  const double with_matched = mean_error(ptq(matched, *calib, per_tensor));
  WARN("per-tensor int8 mean output error: plain " << plain << ", bias_correction " << with_correction
                                                   << ", per-channel correction " << with_mismatched);
  CHECK(plain > 0.03);
  CHECK(with_correction < plain / 5);
  CHECK(with_mismatched > plain / 2);
  CHECK(with_matched == Approx(with_correction).margin(1e-6));
}

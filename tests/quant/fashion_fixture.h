// The Fashion-MNIST fixture quantized for the PTQ tests: folded, calibrated on
// 512 training images, converted to int8 and to its fake-quant twin; and the
// comparisons those tests make between the two.
#pragma once

#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "compress/eval/dataset.h"
#include "compress/eval/metrics.h"
#include "compress/quant/calibration.h"
#include "compress/quant/layer_plan.h"
#include "compress/transforms/fold_batch_norm.h"
#include "fashion_data.h"
#include "quant_test_util.h"

namespace compress::quant_test {

using test::fashion_data;
using test::kFashionNorm;

struct FashionFixture {
  ir::Graph f32;  // batch norms folded
  ir::Graph int8;
  ir::Graph fake;
  std::vector<quant::LayerQuant> layers;
};

// tests/fixtures/models/fashion_cnn.cmf planned with `granularity` weights;
// built once per granularity and shared by the tests.
inline const FashionFixture& fashion_fixture(quant::WeightGranularity granularity) {
  static std::map<quant::WeightGranularity, FashionFixture> built;
  auto it = built.find(granularity);
  if (it != built.end()) return it->second;
  ir::Graph g = test::fashion_cnn();
  pass::PassContext ctx;
  ctx.progress = false;
  transforms::FoldBatchNormPass().run(g, ctx).value();
  auto calib_data = test::fashion_data("train", 512);
  quant::CalibrationOptions opts;
  opts.progress = false;
  const auto nodes = quant::quantizable_nodes(g);
  auto calib = quant::calibrate(g, quant::values_to_observe(g, nodes), *calib_data, opts).value();
  quant::PlanOptions plan;
  plan.weight_granularity = granularity;
  FashionFixture f{g.clone(), g.clone(), g.clone(), quant::plan_layers(g, nodes, calib, plan).value()};
  throw_if_error(quant::convert_to_int8(f.int8, f.layers));
  throw_if_error(quant::convert_to_fake_quant(f.fake, f.layers));
  return built.emplace(granularity, std::move(f)).first->second;
}

// The first `count` Fashion-MNIST test images, normalized.
inline ir::Tensor fashion_test_images(int64_t count) {
  return fashion_data("test", count)->batch(0, count).value().inputs;
}

// Top-1 of `graph` on the whole Fashion-MNIST test set (onednn).
inline Expected<eval::AccuracyResult> fashion_top1(const ir::Graph& graph) {
  auto test = fashion_data("test", -1);
  auto plan = runtime::make_backend("onednn").value()->compile(graph).value();
  return eval::evaluate_top1(*plan, *test, 500, false);
}

// Note [Simulation vs deployment] (test_ptq.cpp): how far the fake-quant
// simulation's logits are from the deployed int8 graph's, per image.
struct SimulationGap {
  float max_gap = 0;         // max |deployed - simulated|
  float quant_err = 0;       // max |deployed - f32|
  int64_t argmax_differs = 0;
  int64_t images_differ = 0;  // images with some logit gap > 1e-4
};

inline SimulationGap simulation_gap(const ir::Tensor& deployed, const ir::Tensor& simulated, const ir::Tensor& f32) {
  SimulationGap s;
  s.max_gap = max_abs_diff(deployed, simulated);
  s.quant_err = max_abs_diff(deployed, f32);
  const int64_t classes = deployed.dim(1);
  for (int64_t n = 0; n < deployed.dim(0); ++n) {
    const float* d = deployed.data<float>() + n * classes;
    const float* m = simulated.data<float>() + n * classes;
    bool differs = false;
    for (int64_t k = 0; k < classes; ++k) differs |= std::fabs(d[k] - m[k]) > 1e-4f;
    s.images_differ += differs ? 1 : 0;
    s.argmax_differs += (std::max_element(d, d + classes) - d) != (std::max_element(m, m + classes) - m) ? 1 : 0;
  }
  return s;
}

}  // namespace compress::quant_test

// quant.smoothquant: fp32 outputs preserved, int8 error reduced on outlier channels.
#include <catch2/catch.hpp>

#include <cmath>

#include "compress/ir/verifier.h"
#include "compress/pass/registry.h"
#include "compress/quant/smoothquant_pass.h"
#include "quant_test_util.h"

using namespace compress;
using namespace compress::quant_test;

namespace {

constexpr int64_t kDim = 32;

// x -> layer_norm (weight with two outlier channels, x40 and x-25) -> q, k
// (two linears reading the same value) -> add. With `layer_norm` false, the
// samples themselves carry the outliers and x feeds the linears directly.
ir::Graph transformer_block(bool layer_norm) {
  ir::Graph g;
  ir::Value* x = g.add_input("x", {ir::DType::kF32, {1, 4, kDim}, nullptr}).value();
  ir::Value* h = x;
  if (layer_norm) {
    ir::Tensor w = random_tensor({kDim}, 1, 0.5f, 1.5f);
    w.data<float>()[3] = 40.0f;
    w.data<float>()[17] = -25.0f;
    ir::Node* ln = g.add_node("layer_norm",
                              {x, g.add_constant("ln.weight", w).value(),
                               g.add_constant("ln.bias", random_tensor({kDim}, 2, -0.1f, 0.1f)).value()},
                              {}, "ln")
                       .value();
    h = ln->output();
  }
  ir::Node* q = g.add_node("linear", {h, g.add_constant("q.weight", random_tensor({16, kDim}, 3)).value(),
                                      g.add_constant("q.bias", random_tensor({16}, 4)).value()},
                           {}, "q")
                    .value();
  ir::Node* k = g.add_node("linear", {h, g.add_constant("k.weight", random_tensor({16, kDim}, 5)).value()}, {}, "k")
                    .value();
  ir::Node* sum = g.add_node("add", {q->output(), k->output()}, {}, "sum").value();
  g.set_outputs({sum->output()});
  return g;
}

ir::Tensor samples(int64_t n, uint64_t seed, bool outliers) {
  ir::Tensor t = random_tensor({n, 4, kDim}, seed, -1.0f, 1.0f);
  if (outliers) {
    for (int64_t i = 0; i < t.numel(); ++i) {
      if (i % kDim == 5) t.data<float>()[i] *= 60.0f;
      if (i % kDim == 20) t.data<float>()[i] *= 30.0f;
    }
  }
  return t;
}

void check_block(bool layer_norm) {
  const ir::Graph g = transformer_block(layer_norm);
  auto calib = eval::from_tensor(samples(64, 7, !layer_norm), {}, "calib").value();
  const ir::Tensor x = samples(64, 8, !layer_norm);
  ir::Graph s = g.clone();
  pass::PassContext ctx;
  ctx.calibration = calib.get();
  ctx.progress = false;
  auto r = quant::SmoothQuantPass().run(s, ctx);
  REQUIRE(r.has_value());
  REQUIRE(ir::verify(s).is_ok());
  CHECK(r->counters.at("groups") == 1.0);  // q and k share their input
  CHECK(r->counters.at("folded_into_layer_norm") == (layer_norm ? 1.0 : 0.0));
  CHECK(r->counters.at("inserted_mul") == (layer_norm ? 0.0 : 1.0));
  CHECK(count_ops(s, "mul") == (layer_norm ? 0 : 1));
  const ir::Tensor ref = run_graph(g, "reference", x)[0];
  CHECK(rel_max_diff(run_graph(s, "reference", x)[0], ref) < 1e-5);
  const double before = mean_abs_diff(run_graph(ptq(g, *calib), "reference", x)[0], ref);
  const double after = mean_abs_diff(run_graph(ptq(s, *calib), "reference", x)[0], ref);
  WARN((layer_norm ? "layer_norm folded" : "mul inserted") << ": int8 mean |error| before SmoothQuant " << before
                                                           << ", after " << after);
  CHECK(after < before / 2);
}

}  // namespace

TEST_CASE("quant.smoothquant: outliers from a layer_norm weight, folded into it") { check_block(true); }

TEST_CASE("quant.smoothquant: outliers in the input, a mul inserted") { check_block(false); }

TEST_CASE("quant.smoothquant: alpha is checked, through the registry") {
  pass::PassRegistry registry;
  REQUIRE(quant::register_quant_passes(registry).is_ok());
  CHECK(registry.create("quant.smoothquant", pass::PassOptions::from_pairs({{"alpha", "0.8"}}, "test").value())
            .has_value());
  auto bad = registry.create("quant.smoothquant", pass::PassOptions::from_pairs({{"alpha", "1.5"}}, "test").value());
  REQUIRE_FALSE(bad.has_value());
  CHECK_THAT(bad.status().message(), Catch::Contains("alpha"));
}

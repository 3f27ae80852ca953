#include <catch2/catch.hpp>

#include "compress/io/cmf.h"
#include "compress/ir/verifier.h"
#include "compress/pass/pass_manager.h"
#include "compress/pass/registry.h"
#include "compress/quant/ptq_pass.h"
#include "compress/transforms/fold_batch_norm.h"
#include "quant_test_util.h"
#include "fashion_data.h"

using namespace compress;
using namespace compress::quant_test;

namespace {

// conv2d (no bias) -> batch_norm -> relu -> flatten -> linear (bias) -> batch_norm.
ir::Graph conv_bn_linear_bn() {
  ir::Graph g;
  ir::Value* x = g.add_input("x", {ir::DType::kF32, {1, 3, 8, 8}, nullptr}).value();
  auto c = [&g](const std::string& name, ir::Tensor t) { return g.add_constant(name, std::move(t)).value(); };
  ir::Value* w = c("conv.weight", random_tensor({4, 3, 3, 3}, 1));
  ir::Node* conv = g.add_node("conv2d", {x, w}, {{"padding", std::vector<int64_t>{1, 1, 1, 1}}}, "conv").value();
  ir::Node* bn = g.add_node("batch_norm",
                            {conv->output(), c("bn.weight", random_tensor({4}, 2, 0.5f, 2.0f)),
                             c("bn.bias", random_tensor({4}, 3)), c("bn.mean", random_tensor({4}, 4)),
                             c("bn.var", random_tensor({4}, 5, 0.1f, 3.0f))},
                            {}, "bn")
                    .value();
  ir::Node* relu = g.add_node("relu", {bn->output()}, {}, "relu").value();
  ir::Node* flat = g.add_node("flatten", {relu->output()}, {}, "flatten").value();
  ir::Node* fc = g.add_node("linear", {flat->output(), c("fc.weight", random_tensor({5, 256}, 6, -0.1f, 0.1f)),
                                       c("fc.bias", random_tensor({5}, 7))},
                            {}, "fc")
                     .value();
  ir::Node* bn2 = g.add_node("batch_norm",
                             {fc->output(), c("bn2.weight", random_tensor({5}, 8, 0.5f, 2.0f)),
                              c("bn2.bias", random_tensor({5}, 9)), c("bn2.mean", random_tensor({5}, 10)),
                              c("bn2.var", random_tensor({5}, 11, 0.1f, 3.0f))},
                             {}, "bn2")
                      .value();
  g.set_outputs({bn2->output()});
  return g;
}

float max_abs(const ir::Tensor& t) {
  float m = 0.0f;
  for (int64_t i = 0; i < t.numel(); ++i) m = std::max(m, std::abs(t.data<float>()[i]));
  return m;
}

}  // namespace

TEST_CASE("fold_batch_norm: conv2d and linear, outputs preserved to float tolerance") {
  ir::Graph g = conv_bn_linear_bn();
  REQUIRE(ir::verify(g).is_ok());
  ir::Graph folded = g.clone();
  pass::PassContext ctx;
  auto r = transforms::FoldBatchNormPass().run(folded, ctx);
  REQUIRE(r.has_value());
  CHECK(r->changed);
  CHECK(r->counters["folded"] == 2.0);
  REQUIRE(ir::verify(folded).is_ok());
  CHECK(count_ops(folded, "batch_norm") == 0);
  CHECK(folded.find_node("conv") != nullptr);  // the folded node keeps the layer name
  CHECK(folded.find_node("conv")->num_inputs() == 3);
  for (uint64_t seed : {100, 101, 102}) {
    ir::Tensor x = random_tensor({1, 3, 8, 8}, seed);
    const ir::Tensor a = run_graph(g, "reference", x)[0];
    const ir::Tensor b = run_graph(folded, "reference", x)[0];
    // Folding reassociates (w * k) . x vs k * (w . x): a few f32 ulps of the
    // output magnitude.
    CHECK(max_abs_diff(a, b) <= 1e-5f * std::max(1.0f, max_abs(a)));
  }
}

TEST_CASE("fold_batch_norm: a conv output with a second user is not folded") {
  ir::Graph g = conv_bn_linear_bn();
  ir::Node* conv = g.find_node("conv");
  ir::Node* extra = g.add_node("relu", {conv->output()}, {}, "side").value();
  g.add_output(extra->output());
  pass::PassContext ctx;
  auto r = transforms::FoldBatchNormPass().run(g, ctx);
  REQUIRE(r.has_value());
  CHECK(r->counters["folded"] == 1.0);
  CHECK(count_ops(g, "batch_norm") == 1);
  CHECK(ir::verify(g).is_ok());
}

TEST_CASE("fold_batch_norm on the Fashion-MNIST fixture through the registry and PassManager") {
  auto g = io::load_cmf(test::fashion_cnn_path());
  REQUIRE(g.has_value());
  pass::PassRegistry registry;
  REQUIRE(transforms::register_transform_passes(registry).is_ok());
  REQUIRE(quant::register_quant_passes(registry).is_ok());
  CHECK_FALSE(registry.add<quant::PtqPass>("quant.ptq").is_ok());
  auto unknown = registry.create("quant.nope");
  REQUIRE_FALSE(unknown.has_value());
  CHECK_THAT(unknown.status().message(), Catch::Contains("transforms.fold_batch_norm"));
  pass::PassManager pm;
  pm.add(registry.create("transforms.fold_batch_norm").value());
  ir::Graph folded = g->clone();
  pass::PassContext ctx;
  auto results = pm.run(folded, ctx);
  REQUIRE(results.has_value());
  REQUIRE(results->size() == 1);
  CHECK(results->at(0).result.counters["folded"] == 2.0);
  CHECK(count_ops(folded, "batch_norm") == 0);
  ir::Tensor x = random_tensor({4, 1, 28, 28}, 7, -0.8f, 2.0f);
  const ir::Tensor a = run_graph(*g, "reference", x)[0];
  const ir::Tensor b = run_graph(folded, "reference", x)[0];
  CHECK(max_abs_diff(a, b) <= 1e-4f * std::max(1.0f, max_abs(a)));
}

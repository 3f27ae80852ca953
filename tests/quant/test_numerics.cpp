// PTQ numerics: constant and all-zero tensors, NaN/Inf calibration data, tiny
// scales, non-finite parameters. The rule each time: a finite fallback and a
// warning, or a clear error; never a NaN in the written model.
#include <unistd.h>

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdio>
#include <limits>

#include "compress/io/cmf.h"
#include "compress/ir/verifier.h"
#include "compress/quant/observed_ranges.h"
#include "compress/quant/observer.h"
#include "compress/quant/scheme.h"
#include "quant_test_util.h"

using namespace compress;
using namespace compress::quant_test;

namespace {

const float kNaN = std::numeric_limits<float>::quiet_NaN();
const float kInf = std::numeric_limits<float>::infinity();

// Every f32 constant and every float attribute of `g` is finite (after a .cmf round trip).
void check_written_model_finite(const ir::Graph& g) {
  // One file per process: ctest -j runs other test cases of this binary at the same time.
  const std::string path = "test_numerics." + std::to_string(::getpid()) + ".cmf";
  REQUIRE(io::save_cmf(g, path).is_ok());
  auto loaded = io::load_cmf(path);
  std::remove(path.c_str());
  REQUIRE(loaded.has_value());
  REQUIRE(ir::verify(*loaded).is_ok());
  for (const ir::Value* c : loaded->constants()) {
    if (c->dtype() != ir::DType::kF32) continue;
    const ir::Tensor t = c->constant().to_dense().value();
    for (int64_t i = 0; i < t.numel(); ++i) {
      INFO(c->name() << "[" << i << "]");
      REQUIRE(std::isfinite(t.data<float>()[i]));
    }
  }
  for (const ir::Node* n : loaded->nodes()) {
    for (const auto& [name, a] : n->attrs()) {
      INFO(n->name() << "." << name);
      if (const auto* d = std::get_if<double>(&a)) CHECK(std::isfinite(*d));
      if (const auto* v = std::get_if<std::vector<double>>(&a)) {
        for (double x : *v) CHECK(std::isfinite(x));
      }
    }
  }
}

// x [1, 4] -> a (linear, weight `wa`, bias `ba`) -> relu -> b (linear 4 -> 3) -> output.
ir::Graph two_linears(const ir::Tensor& wa, const ir::Tensor& ba) {
  ir::Graph g;
  ir::Value* x = g.add_input("x", {ir::DType::kF32, {1, 4}, nullptr}).value();
  ir::Node* a = g.add_node("linear", {x, g.add_constant("a.weight", wa).value(), g.add_constant("a.bias", ba).value()},
                           {}, "a")
                    .value();
  ir::Node* r = g.add_node("relu", {a->output()}, {}, "r").value();
  ir::Node* b = g.add_node("linear", {r->output(), g.add_constant("b.weight", random_tensor({3, 4}, 11)).value(),
                                      g.add_constant("b.bias", random_tensor({3}, 12)).value()},
                           {}, "b")
                    .value();
  g.set_outputs({b->output()});
  return g;
}

ir::Tensor filled(ir::Shape shape, float v) {
  ir::Tensor t = ir::Tensor::zeros(ir::DType::kF32, std::move(shape)).value();
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = v;
  return t;
}

}  // namespace

TEST_CASE("numerics: every observer skips NaN and Inf in calibration data, PTQ output is finite") {
  ir::Tensor samples = random_tensor({32, 4}, 1);
  samples.data<float>()[1] = kNaN;
  samples.data<float>()[6] = kInf;
  samples.data<float>()[9] = -kInf;
  auto data = eval::from_tensor(samples, {}, "poisoned").value();
  const ir::Graph g = two_linears(random_tensor({4, 4}, 2), random_tensor({4}, 3));
  for (const std::string& observer : quant::observer_names()) {
    INFO(observer);
    quant::PtqPass::Options opts;
    opts.observer = observer;
    opts.batch = 8;
    const ir::Graph q = ptq(g, *data, opts);
    const auto ranges = quant::observed_ranges(q).value();
    CHECK(ranges.at("x").min >= -1.0f);
    CHECK(ranges.at("x").max <= 1.0f);
    const ir::Tensor out = run_graph(q, "reference", random_tensor({4, 4}, 4))[0];
    for (int64_t i = 0; i < out.numel(); ++i) CHECK(std::isfinite(out.data<float>()[i]));
    check_written_model_finite(q);
  }
}

TEST_CASE("numerics: a value with no finite calibration value is an error naming it") {
  auto data = eval::from_tensor(filled({4, 4}, kNaN), {}, "all-nan").value();
  ir::Graph q = two_linears(random_tensor({4, 4}, 2), random_tensor({4}, 3));
  pass::PassContext ctx;
  ctx.calibration = data.get();
  ctx.progress = false;
  auto r = quant::PtqPass().run(q, ctx);
  REQUIRE_FALSE(r.has_value());
  CHECK_THAT(r.status().message(), Catch::Contains("'x'"));
  CHECK_THAT(r.status().message(), Catch::Contains("no finite value"));
}

TEST_CASE("numerics: all-zero and constant activations (pruned layer) get exact fallback params") {
  auto data = eval::from_tensor(random_tensor({16, 4}, 1), {}, "random").value();
  const ir::Tensor x = random_tensor({8, 4}, 5);
  for (float bias : {0.0f, 3.0f}) {
    INFO("bias " << bias);
    // a's weights are all zero: relu(a) is the constant relu(bias) everywhere.
    const ir::Graph g = two_linears(filled({4, 4}, 0.0f), filled({4}, bias));
    const ir::Graph q = ptq(g, *data);
    const auto ranges = quant::observed_ranges(q).value();
    CHECK(ranges.at("r").min == bias);
    CHECK(ranges.at("r").max == bias);
    // Zero is exact (scale 1.0 fallback) and 3 is the top of [0, 3]: b reads
    // exactly what f32 reads. With input 0 b outputs its f32 bias exactly;
    // with input 3 only b's weight rounding remains (<= 4 * 3 * max|w| / 127 / 2 < 0.05).
    const float tolerance = bias == 0.0f ? 1e-6f : 0.05f;
    CHECK(max_abs_diff(run_graph(q, "reference", x)[0], run_graph(g, "reference", x)[0]) < tolerance);
    CHECK(run_graph(q, "reference", x)[0].bitwise_equal(run_graph(q, "onednn", x)[0]));
    check_written_model_finite(q);
  }
}

TEST_CASE("numerics: tiny weights and tiny activations get the minimum scale, outputs stay finite") {
  // Weights of 1e-30 (scale raised to 1e-10: they quantize to 0, a outputs its bias)
  // and inputs of 1e-39 (denormal; input scale raised to 1e-10).
  const ir::Graph g = two_linears(filled({4, 4}, 1e-30f), random_tensor({4}, 3, 0.1f, 1.0f));
  ir::Tensor tiny = random_tensor({16, 4}, 1);
  for (int64_t i = 0; i < tiny.numel(); ++i) tiny.data<float>()[i] *= 1e-39f;
  auto data = eval::from_tensor(tiny, {}, "tiny").value();
  pass::PassContext ctx;
  ctx.calibration = data.get();
  ctx.progress = false;
  ir::Graph q = g.clone();
  auto r = quant::PtqPass().run(q, ctx);
  REQUIRE(r.has_value());
  CHECK(r->layers.at("a").at("input_scale") == Approx(quant::kMinScale));
  CHECK(r->layers.at("a").at("weight_scale_max") == Approx(quant::kMinScale));
  ir::Tensor xs = random_tensor({4, 4}, 6);
  for (int64_t i = 0; i < xs.numel(); ++i) xs.data<float>()[i] *= 1e-39f;
  const ir::Tensor out = run_graph(q, "reference", xs)[0];
  for (int64_t i = 0; i < out.numel(); ++i) CHECK(std::isfinite(out.data<float>()[i]));
  CHECK(max_abs_diff(out, run_graph(g, "reference", xs)[0]) < 0.05f);
  check_written_model_finite(q);
}

TEST_CASE("numerics: a NaN bias or weight of a quantized layer is an error naming layer and channel") {
  auto data = eval::from_tensor(random_tensor({16, 4}, 1), {}, "random").value();
  ir::Tensor bias = random_tensor({4}, 3);
  bias.data<float>()[2] = kNaN;
  ir::Graph q = two_linears(random_tensor({4, 4}, 2), bias);
  pass::PassContext ctx;
  ctx.calibration = data.get();
  ctx.progress = false;
  auto r = quant::PtqPass().run(q, ctx);
  REQUIRE_FALSE(r.has_value());
  CHECK_THAT(r.status().message(), Catch::Contains("bias of layer 'a'") && Catch::Contains("channel 2"));
  ir::Tensor w = random_tensor({4, 4}, 2);
  w.data<float>()[5] = kInf;
  ir::Graph q2 = two_linears(w, random_tensor({4}, 3));
  auto r2 = quant::PtqPass().run(q2, ctx);
  REQUIRE_FALSE(r2.has_value());
  CHECK_THAT(r2.status().message(), Catch::Contains("weight of layer 'a'") && Catch::Contains("channel 1"));
}

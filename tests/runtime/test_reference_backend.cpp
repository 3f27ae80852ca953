// Reference backend behaviour beyond op values: errors, NaN, batch changes, sparse weights, determinism.
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <random>

#include "compress/ir/sparse_layout.h"
#include "compress/runtime/backend.h"
#include "compress/runtime/reference.h"
#include "compress/support/threads.h"

namespace compress::test {
namespace {

using ir::DType;
using ir::Graph;
using ir::Tensor;
using ir::Value;
using ir::ValueType;

Tensor random_tensor(ir::Shape shape, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  Tensor t = Tensor::zeros(DType::kF32, std::move(shape)).value();
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = dist(gen);
  return t;
}

Value* input(Graph& g, const std::string& name, ir::Shape shape, DType dtype = DType::kF32) {
  return g.add_input(name, ValueType{dtype, std::move(shape), nullptr}).value();
}

Value* node(Graph& g, const std::string& op, std::vector<Value*> inputs, ir::AttributeMap attrs,
            const std::string& name) {
  auto n = g.add_node(op, inputs, std::move(attrs), name);
  INFO(n.status().to_string());
  REQUIRE(n.has_value());
  return (*n)->output();
}

// Runs a one-node graph on x (declared with x's shape).
Expected<std::vector<Tensor>> run_unary(const std::string& op, const Tensor& x, ir::AttributeMap attrs = {}) {
  Graph g;
  Value* in = input(g, "x", x.shape());
  g.set_outputs({node(g, op, {in}, std::move(attrs), op)});
  return runtime::run_reference(g, {x});
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("backends by name", "[runtime]") {
  auto backend = runtime::make_backend("reference");
  REQUIRE(backend.has_value());
  CHECK((*backend)->name() == "reference");
  // "reference" is always there and listed first; optional backends (onednn) follow.
  REQUIRE_FALSE(runtime::available_backends().empty());
  CHECK(runtime::available_backends().front() == "reference");
  auto unknown = runtime::make_backend("tpu");
  REQUIRE_FALSE(unknown.has_value());
  CHECK(unknown.status().code() == StatusCode::kNotFound);
  CHECK(contains(unknown.status().message(), "'tpu'"));
  CHECK(contains(unknown.status().message(), "available: reference"));
}

TEST_CASE("the reference backend supports every op of op set v1", "[runtime]") {
  Graph g;
  Value* x = input(g, "x", {1, 4});
  node(g, "relu", {x}, {}, "r");
  auto backend = runtime::make_reference_backend();
  CHECK(backend->supports(*g.find_node("r")).supported);
  // An op outside the table is refused with a reason (a graph read from a newer file).
  ir::Node* odd = g.add_node_unchecked("fancy_op", {x}, {}, "odd", {ValueType{DType::kF32, {1, 4}, nullptr}});
  const runtime::SupportDecision d = backend->supports(*odd);
  CHECK_FALSE(d.supported);
  CHECK(contains(d.reason, "fancy_op"));
}

TEST_CASE("an embedding index out of range is an error naming the node, not a crash", "[runtime][errors]") {
  Graph g;
  Value* idx = input(g, "tokens", {1, 3}, DType::kI64);
  Value* table = g.add_constant("embed.weight", random_tensor({5, 2}, 1)).value();
  g.set_outputs({node(g, "embedding", {idx, table}, {}, "encoder.embed")});
  for (int64_t bad : {int64_t{5}, int64_t{-1}, std::numeric_limits<int64_t>::max()}) {
    auto result = runtime::run_reference(g, {Tensor::from_vector<int64_t>(DType::kI64, {1, 3}, {0, bad, 2})});
    REQUIRE_FALSE(result.has_value());
    const std::string msg = result.status().message();
    INFO(msg);
    CHECK(contains(msg, "'encoder.embed'"));
    CHECK(contains(msg, "(embedding)"));
    CHECK(contains(msg, "index " + std::to_string(bad)));
    CHECK(contains(msg, "5 rows"));
  }
  auto ok = runtime::run_reference(g, {Tensor::from_vector<int64_t>(DType::kI64, {1, 3}, {0, 4, 2})});
  CHECK(ok.has_value());
}

TEST_CASE("inputs that do not fit a node give an error with the node and the shapes", "[runtime][errors]") {
  Graph g;
  Value* x = input(g, "x", {1, 3, 8, 8});
  Value* w = g.add_constant("conv.weight", random_tensor({4, 3, 3, 3}, 2)).value();
  node(g, "conv2d", {x, w}, {}, "stem.conv");
  const ir::Node& conv = *g.find_node("stem.conv");

  SECTION("wrong rank at run time") {
    auto r = runtime::run_reference_node(conv, {random_tensor({3, 8, 8}, 3), w->constant()});
    REQUIRE_FALSE(r.has_value());
    INFO(r.status().message());
    CHECK(contains(r.status().message(), "'stem.conv' (conv2d)"));
    CHECK(contains(r.status().message(), "[3,8,8]"));
    CHECK(contains(r.status().message(), "rank 4"));
  }
  SECTION("wrong channel count") {
    auto r = runtime::run_reference_node(conv, {random_tensor({1, 5, 8, 8}, 3), w->constant()});
    REQUIRE_FALSE(r.has_value());
    CHECK(contains(r.status().message(), "'stem.conv' (conv2d)"));
    CHECK(contains(r.status().message(), "[1,5,8,8]"));
  }
  SECTION("wrong arity") {
    auto r = runtime::run_reference_node(conv, {random_tensor({1, 3, 8, 8}, 3)});
    REQUIRE_FALSE(r.has_value());
    CHECK(contains(r.status().message(), "'stem.conv' (conv2d)"));
  }
  SECTION("an integer tensor where f32 is expected") {
    auto r = runtime::run_reference_node(conv, {Tensor::zeros(DType::kI32, {1, 3, 8, 8}).value(), w->constant()});
    REQUIRE_FALSE(r.has_value());
    CHECK(contains(r.status().message(), "must be f32"));
  }
}

TEST_CASE("batches that disagree between inputs are reported at the node that combines them", "[runtime][errors]") {
  Graph g;
  Value* a = input(g, "a", {2, 4});
  Value* b = input(g, "b", {2, 4});
  Value* ra = node(g, "relu", {a}, {}, "relu_a");
  g.set_outputs({node(g, "add", {ra, b}, {}, "merge")});
  auto r = runtime::run_reference(g, {random_tensor({2, 4}, 1), random_tensor({3, 4}, 2)});
  REQUIRE_FALSE(r.has_value());
  INFO(r.status().message());
  CHECK(contains(r.status().message(), "'merge' (add)"));
  CHECK(contains(r.status().message(), "[2,4]"));
  CHECK(contains(r.status().message(), "[3,4]"));
  // The same batch everywhere, other than the declared one, is fine.
  auto ok = runtime::run_reference(g, {random_tensor({5, 4}, 1), random_tensor({5, 4}, 2)});
  REQUIRE(ok.has_value());
  CHECK((*ok)[0].shape() == ir::Shape{5, 4});
}

TEST_CASE("plan inputs are checked against the declared types", "[runtime][errors]") {
  Graph g;
  Value* x = input(g, "image", {1, 3, 4, 4});
  g.set_outputs({node(g, "relu", {x}, {}, "r")});
  auto backend = runtime::make_reference_backend();
  auto plan = backend->compile(g);
  REQUIRE(plan.has_value());
  auto count = (*plan)->run({});
  REQUIRE_FALSE(count.has_value());
  CHECK(contains(count.status().message(), "takes 1 inputs, got 0"));
  auto dims = (*plan)->run({random_tensor({1, 3, 5, 4}, 1)});
  REQUIRE_FALSE(dims.has_value());
  CHECK(contains(dims.status().message(), "'image'"));
  CHECK(contains(dims.status().message(), "[1,3,5,4]"));
  auto dtype = (*plan)->run({Tensor::zeros(DType::kI8, {1, 3, 4, 4}).value()});
  REQUIRE_FALSE(dtype.has_value());
  CHECK(contains(dtype.status().message(), "i8"));
  CHECK((*plan)->run({random_tensor({7, 3, 4, 4}, 1)}).has_value());  // another batch is fine
}

TEST_CASE("NaN inputs propagate as NaN", "[runtime][nan]") {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  Tensor x = Tensor::from_vector<float>(DType::kF32, {2, 3}, {nan, 1.0f, -2.0f, 0.5f, 7.0f, -7.0f});
  const std::vector<std::pair<std::string, ir::AttributeMap>> ops = {
      {"relu", {}},
      {"relu6", {}},
      {"silu", {}},
      {"sigmoid", {}},
      {"tanh", {}},
      {"hardswish", {}},
      {"hardsigmoid", {}},
      {"gelu", {}},
      {"clamp", {{"min", -1.0}, {"max", 1.0}}},
      {"fake_quant", {{"scale", std::vector<double>{0.1}}}},
  };
  for (const auto& [op, attrs] : ops) {
    INFO(op);
    auto r = run_unary(op, x, attrs);
    REQUIRE(r.has_value());
    const float* y = (*r)[0].data<float>();
    CHECK(std::isnan(y[0]));
    for (int i = 1; i < 6; ++i) CHECK_FALSE(std::isnan(y[i]));
  }
  // Row-wise ops: the row with the NaN becomes NaN, the other row does not.
  for (const auto& [op, attrs] : std::vector<std::pair<std::string, ir::AttributeMap>>{
           {"softmax", {}}, {"layer_norm", {}}, {"reduce_mean", {{"axes", std::vector<int64_t>{1}}}}}) {
    INFO(op);
    auto r = run_unary(op, x, attrs);
    REQUIRE(r.has_value());
    const Tensor& y = (*r)[0];
    const int64_t per_row = y.numel() / 2;
    for (int64_t i = 0; i < per_row; ++i) {
      CHECK(std::isnan(y.data<float>()[i]));
      CHECK_FALSE(std::isnan(y.data<float>()[per_row + i]));
    }
  }
  // Max pooling lets NaN win in every window that sees it; conv spreads it to its windows only.
  Tensor img = random_tensor({1, 1, 4, 4}, 5);
  img.data<float>()[0] = nan;
  auto pooled =
      run_unary("max_pool2d", img, {{"kernel", std::vector<int64_t>{2, 2}}, {"stride", std::vector<int64_t>{2, 2}}});
  REQUIRE(pooled.has_value());
  CHECK(std::isnan((*pooled)[0].data<float>()[0]));
  for (int i = 1; i < 4; ++i) CHECK_FALSE(std::isnan((*pooled)[0].data<float>()[i]));
  // quantize has no NaN code: it maps NaN to qmin (documented in docs/ops.md).
  auto q = run_unary(
      "quantize", x,
      {{"dtype", std::string("u8")}, {"scale", std::vector<double>{0.1}}, {"zero_point", std::vector<int64_t>{128}}});
  REQUIRE(q.has_value());
  CHECK((*q)[0].data<uint8_t>()[0] == 0);
}

TEST_CASE("sparse constant weights run exactly like their dense form", "[runtime][sparse]") {
  Tensor dense_w = random_tensor({8, 4, 3, 3}, 11);
  for (int64_t i = 0; i < dense_w.numel(); ++i) {
    if (i % 3 != 0) dense_w.data<float>()[i] = 0.0f;  // about two thirds pruned
  }
  Tensor x = random_tensor({2, 4, 6, 6}, 12);
  auto run_with = [&](const Tensor& w) {
    Graph g;
    Value* in = input(g, "x", {2, 4, 6, 6});
    Value* wv = g.add_constant("conv.weight", w).value();
    g.set_outputs({node(g, "conv2d", {in, wv}, {{"padding", std::vector<int64_t>{1, 1, 1, 1}}}, "conv")});
    auto r = runtime::run_reference(g, {x});
    INFO(r.status().to_string());
    REQUIRE(r.has_value());
    return (*r)[0];
  };
  const Tensor expected = run_with(dense_w);
  for (const char* layout : {"csr", "mask", "block"}) {
    INFO(layout);
    Expected<Tensor> sparse = std::string(layout) == "csr"    ? ir::to_csr_layout(dense_w)
                              : std::string(layout) == "mask" ? ir::to_mask_layout(dense_w)
                                                              : ir::to_block_layout(dense_w, 2, 4);
    REQUIRE(sparse.has_value());
    REQUIRE(sparse->is_sparse());
    CHECK(run_with(*sparse).bitwise_equal(expected));
  }
}

TEST_CASE("f16 and bf16 tensors compute in f32 and keep their dtype", "[runtime][half]") {
  Tensor x32 = random_tensor({3, 8}, 21);
  Tensor w32 = random_tensor({4, 8}, 22);
  for (DType half : {DType::kF16, DType::kBF16}) {
    auto to_half = [half](const Tensor& t) {
      Tensor h = Tensor::zeros(half, t.shape()).value();
      for (int64_t i = 0; i < t.numel(); ++i) {
        h.data<uint16_t>()[i] =
            half == DType::kF16 ? ir::float_to_half(t.data<float>()[i]) : ir::float_to_bf16(t.data<float>()[i]);
      }
      return h;
    };
    Graph g;
    Value* x = input(g, "x", {3, 8}, half);
    Value* w = g.add_constant("fc.weight", to_half(w32)).value();
    g.set_outputs({node(g, "linear", {x, w}, {}, "fc")});
    auto r = runtime::run_reference(g, {to_half(x32)});
    INFO(r.status().to_string());
    REQUIRE(r.has_value());
    CHECK((*r)[0].dtype() == half);
    CHECK((*r)[0].shape() == ir::Shape{3, 4});
    // Within the half type's rounding of the f32 result of the rounded inputs.
    const Tensor& y = (*r)[0];
    for (int64_t row = 0; row < 3; ++row) {
      for (int64_t o = 0; o < 4; ++o) {
        double acc = 0.0;
        for (int64_t k = 0; k < 8; ++k) {
          acc += to_half(x32).element_as_double(row * 8 + k) * to_half(w32).element_as_double(o * 8 + k);
        }
        const double tol = (half == DType::kF16 ? 1e-3 : 8e-3) * std::max(1.0, std::fabs(acc));
        CHECK(std::fabs(y.element_as_double(row * 4 + o) - acc) <= tol);
      }
    }
  }
}

TEST_CASE("an int32 accumulator overflow is reported, not wrapped", "[runtime][quant][errors]") {
  // 70000 products of 255 * -128 exceed int32 (the int8 backends would wrap).
  const int64_t k = 70000;
  Graph g;
  auto xq = std::make_shared<const ir::QuantParams>(ir::QuantParams::per_tensor(DType::kU8, 0.1f, 0).value());
  Value* x = g.add_input("x", ValueType{DType::kU8, {1, k}, xq}).value();
  Tensor w = Tensor::zeros(DType::kI8, {1, k}).value();
  for (int64_t i = 0; i < k; ++i) w.data<int8_t>()[i] = -128;
  auto wq = std::make_shared<const ir::QuantParams>(ir::QuantParams::per_tensor(DType::kI8, 0.1f, 0).value());
  Value* wv = g.add_constant("fc.weight", w.with_quant(wq)).value();
  g.set_outputs({node(g, "qlinear", {x, wv}, {}, "fc")});
  Tensor xt = Tensor::zeros(DType::kU8, {1, k}).value();
  for (int64_t i = 0; i < k; ++i) xt.data<uint8_t>()[i] = 255;
  auto r = runtime::run_reference(g, {xt.with_quant(xq)});
  REQUIRE_FALSE(r.has_value());
  INFO(r.status().message());
  CHECK(contains(r.status().message(), "'fc' (qlinear)"));
  CHECK(contains(r.status().message(), "overflow"));
}

TEST_CASE("quant params travel through data movement ops", "[runtime][quant]") {
  Graph g;
  Value* x = input(g, "x", {2, 3, 2, 2});
  Value* q = node(
      g, "quantize", {x},
      {{"dtype", std::string("u8")}, {"scale", std::vector<double>{0.05}}, {"zero_point", std::vector<int64_t>{100}}},
      "q");
  Value* flat = node(g, "flatten", {q}, {}, "flat");
  Value* dq = node(g, "dequantize", {flat}, {}, "dq");
  Value* direct = node(
      g, "fake_quant", {x},
      {{"dtype", std::string("u8")}, {"scale", std::vector<double>{0.05}}, {"zero_point", std::vector<int64_t>{100}}},
      "fq");
  g.set_outputs({dq, direct, flat});
  Tensor in = random_tensor({2, 3, 2, 2}, 31, -3.0f, 3.0f);
  auto r = runtime::run_reference(g, {in});
  INFO(r.status().to_string());
  REQUIRE(r.has_value());
  // dequantize(flatten(quantize(x))) == flatten(fake_quant(x)), bit for bit.
  CHECK((*r)[0].reshaped({2, 3, 2, 2}).value().bitwise_equal((*r)[1]));
  REQUIRE((*r)[2].quant() != nullptr);
  CHECK((*r)[2].quant()->zero_points()[0] == 100);
}

TEST_CASE("graph outputs may be inputs, constants or values used again later", "[runtime]") {
  Graph g;
  Value* x = input(g, "x", {2, 3});
  Value* c = g.add_constant("bias", random_tensor({3}, 41)).value();
  Value* r = node(g, "relu", {x}, {}, "r");
  Value* s = node(g, "sigmoid", {r}, {}, "s");
  Value* sum = node(g, "add", {r, c}, {}, "sum");  // r is used after it is an output
  Value* prod = node(g, "mul", {sum, s}, {}, "prod");
  g.set_outputs({r, x, c, prod});
  Tensor in = random_tensor({2, 3}, 42);
  auto backend = runtime::make_reference_backend();
  auto plan = backend->compile(g);
  REQUIRE(plan.has_value());
  auto first = (*plan)->run({in});
  REQUIRE(first.has_value());
  REQUIRE(first->size() == 4);
  CHECK((*first)[1].bitwise_equal(in));
  CHECK((*first)[2].bitwise_equal(c->constant()));
  for (int i = 0; i < 6; ++i) {
    const float xv = in.data<float>()[i], rv = xv < 0 ? 0.0f : xv;
    CHECK((*first)[0].data<float>()[i] == rv);
    const float expect = (rv + c->constant().data<float>()[i % 3]) *
                         static_cast<float>(1.0 / (1.0 + std::exp(-static_cast<double>(rv))));
    CHECK((*first)[3].data<float>()[i] == Approx(expect).epsilon(1e-6));
  }
  auto second = (*plan)->run({in});  // a plan runs again with the same results
  REQUIRE(second.has_value());
  for (size_t i = 0; i < 4; ++i) CHECK((*second)[i].bitwise_equal((*first)[i]));
}

TEST_CASE("results are identical across runs and thread counts", "[runtime][threads]") {
  Graph g;
  Value* x = input(g, "x", {3, 8, 12, 12});
  Value* w1 = g.add_constant("conv1.weight", random_tensor({16, 4, 3, 3}, 51)).value();
  Value* c1 =
      node(g, "conv2d", {x, w1}, {{"padding", std::vector<int64_t>{1, 1, 1, 1}}, {"groups", int64_t{2}}}, "conv1");
  Value* a1 = node(g, "gelu", {c1}, {}, "act1");
  Value* p1 = node(g, "avg_pool2d", {a1},
                   {{"kernel", std::vector<int64_t>{3, 3}},
                    {"stride", std::vector<int64_t>{2, 2}},
                    {"padding", std::vector<int64_t>{1, 1, 1, 1}},
                    {"ceil_mode", int64_t{1}}},
                   "pool1");
  Value* seq = node(g, "reshape", {p1}, {{"shape", std::vector<int64_t>{-1, 16, 49}}}, "seq");
  Value* tok = node(g, "transpose", {seq}, {{"dim0", int64_t{1}}, {"dim1", int64_t{2}}}, "tokens");  // [3,49,16]
  Value* ln = node(g, "layer_norm", {tok}, {}, "ln");
  Value* wq = g.add_constant("q.weight", random_tensor({16, 16}, 52)).value();
  Value* q = node(g, "linear", {ln, wq}, {}, "q");
  Value* att = node(g, "scaled_dot_product_attention", {q, ln, ln}, {{"is_causal", int64_t{1}}}, "attn");
  Value* mm = node(g, "matmul", {att, node(g, "transpose", {ln}, {{"dim0", int64_t{1}}, {"dim1", int64_t{2}}}, "lnT")},
                   {}, "gram");
  Value* sm = node(g, "softmax", {mm}, {}, "sm");
  Value* big = g.add_constant("fc.weight", random_tensor({10, 49}, 53)).value();
  Value* fc = node(g, "linear", {sm, big}, {}, "fc");  // 147 rows: more than one row block
  Value* fq = node(
      g, "quantize", {fc},
      {{"dtype", std::string("u8")}, {"scale", std::vector<double>{0.02}}, {"zero_point", std::vector<int64_t>{128}}},
      "fcq");
  Tensor wq8 = Tensor::zeros(DType::kI8, {5, 10}).value();
  for (int64_t i = 0; i < wq8.numel(); ++i) wq8.data<int8_t>()[i] = static_cast<int8_t>((i * 37) % 255 - 127);
  auto wparams = std::make_shared<const ir::QuantParams>(
      ir::QuantParams::per_axis(DType::kI8, 0, {0.01f, 0.02f, 0.03f, 0.04f, 0.05f}, {0, 0, 0, 0, 0}).value());
  Value* qw = g.add_constant("qfc.weight", wq8.with_quant(wparams)).value();
  Value* qfc = node(g, "qlinear", {fq, qw},
                    {{"out_dtype", std::string("u8")}, {"out_scale", 0.05}, {"out_zero_point", int64_t{10}}}, "qfc");
  g.set_outputs({fc, qfc});
  Tensor in = random_tensor({3, 8, 12, 12}, 54);

  std::vector<std::vector<Tensor>> results;
  for (int threads : {1, 1, 2, 3}) {
    set_num_threads(threads);
    auto r = runtime::run_reference(g, {in});
    INFO(r.status().to_string());
    REQUIRE(r.has_value());
    results.push_back(*r);
  }
  set_num_threads(0);
  for (size_t i = 1; i < results.size(); ++i) {
    for (size_t o = 0; o < results[0].size(); ++o) CHECK(results[i][o].bitwise_equal(results[0][o]));
  }
}

}  // namespace compress::test

namespace compress::test {

TEST_CASE("nodes without their defaulted attributes: the plan fills them, a lone node is refused",
          "[runtime][errors]") {
  // The file reader builds nodes unchecked; their defaults may be absent.
  Graph g;
  Value* x = input(g, "x", {2, 3});
  ir::Node* sm = g.add_node_unchecked("softmax", {x}, {}, "probs", {ValueType{DType::kF32, {2, 3}, nullptr}});
  g.set_outputs({sm->output()});
  Tensor in = random_tensor({2, 3}, 61);
  auto lone = runtime::run_reference_node(*sm, {in});
  REQUIRE_FALSE(lone.has_value());
  CHECK(contains(lone.status().message(), "'probs' (softmax)"));
  CHECK(contains(lone.status().message(), "'axis'"));
  auto planned = runtime::run_reference(g, {in});
  INFO(planned.status().to_string());
  REQUIRE(planned.has_value());
  const float* y = (*planned)[0].data<float>();
  CHECK(y[0] + y[1] + y[2] == Approx(1.0f).epsilon(1e-6));
}

TEST_CASE("a multi-output node returns every output", "[runtime]") {
  Graph g;
  Value* x = input(g, "x", {2, 5});
  auto split = g.add_node("split", {x}, {{"axis", int64_t{1}}, {"sizes", std::vector<int64_t>{2, 3}}}, "halves");
  REQUIRE(split.has_value());
  Tensor in = random_tensor({2, 5}, 71);
  auto r = runtime::run_reference_node(**split, {in});
  REQUIRE(r.has_value());
  REQUIRE(r->size() == 2);
  CHECK((*r)[0].shape() == ir::Shape{2, 2});
  CHECK((*r)[1].shape() == ir::Shape{2, 3});
  CHECK((*r)[1].data<float>()[0] == in.data<float>()[2]);
  CHECK((*r)[1].data<float>()[3] == in.data<float>()[7]);
}

}  // namespace compress::test

#include <catch2/catch.hpp>

#include "compress/ir/op_schema.h"
#include "compress/ir/verifier.h"
#include "ir_test_util.h"

using namespace compress;
using namespace compress::ir;

TEST_CASE("building a graph infers types and keeps use lists") {
  Graph g = test::small_cnn();
  REQUIRE(verify(g).is_ok());
  CHECK(g.num_nodes() == 6);
  Node* conv1 = g.find_node("conv1");
  REQUIRE(conv1 != nullptr);
  CHECK(conv1->output()->shape() == Shape{1, 4, 8, 8});
  CHECK(conv1->attr_ints("stride") == std::vector<int64_t>{1, 1});  // default filled in
  CHECK(conv1->attr_int("groups") == 1);
  Value* relu = g.find_value("relu1");
  REQUIRE(relu != nullptr);
  CHECK(relu->uses().size() == 2);  // conv2 and the residual add
  CHECK(g.find_value("fc")->shape() == Shape{1, 10});
}

TEST_CASE("add_node rejects bad ops, attributes and shapes without touching the graph") {
  Graph g = test::small_cnn();
  const size_t before = g.num_nodes();
  Value* x = g.inputs()[0];
  Value* w = g.find_value("conv1.weight");
  auto unknown = g.add_node("conv3d", {x, w}, {}, "bad");
  CHECK(unknown.status().code() == StatusCode::kNotFound);
  CHECK(unknown.status().message().find("conv3d") != std::string::npos);
  auto bad_attr = g.add_node("conv2d", {x, w}, {{"strides", std::vector<int64_t>{1, 1}}}, "bad");
  CHECK(bad_attr.status().message().find("unknown attribute 'strides'") != std::string::npos);
  auto bad_kind = g.add_node("conv2d", {x, w}, {{"groups", std::string("two")}}, "bad");
  CHECK(bad_kind.status().message().find("must be int") != std::string::npos);
  auto bad_arity = g.add_node("relu", {x, w}, {}, "bad");
  CHECK(bad_arity.status().message().find("takes 1 to 1 inputs, got 2") != std::string::npos);
  Value* fcw = g.find_value("fc.weight");
  auto bad_shape = g.add_node("conv2d", {x, fcw}, {}, "bad");
  CHECK(bad_shape.status().message().find("rank 4") != std::string::npos);
  CHECK(g.num_nodes() == before);
  CHECK(verify(g).is_ok());
}

TEST_CASE("shape inference for conv, pooling and matmul follows PyTorch") {
  Graph g;
  Value* x = g.add_input("x", ValueType{DType::kF32, {2, 8, 15, 15}, nullptr}).value();
  Value* dw = g.add_constant("dw", test::filled({8, 1, 3, 3})).value();
  Node* conv = g.add_node("conv2d", {x, dw},
                          {{"groups", int64_t{8}},
                           {"stride", std::vector<int64_t>{2, 2}},
                           {"padding", std::vector<int64_t>{1, 1, 1, 1}},
                           {"dilation", std::vector<int64_t>{2, 2}}},
                          "dw")
                   .value();
  CHECK(conv->output()->shape() == Shape{2, 8, 7, 7});
  Node* pool = g.add_node("max_pool2d", {x},
                          {{"kernel", std::vector<int64_t>{3, 3}},
                           {"stride", std::vector<int64_t>{2, 2}},
                           {"ceil_mode", int64_t{1}}},
                          "pool")
                   .value();
  CHECK(pool->output()->shape() == Shape{2, 8, 7, 7});
  Node* pool2 = g.add_node("max_pool2d", {x},
                           {{"kernel", std::vector<int64_t>{2, 2}},
                            {"stride", std::vector<int64_t>{2, 2}},
                            {"ceil_mode", int64_t{1}}},
                           "pool2")
                    .value();
  CHECK(pool2->output()->shape() == Shape{2, 8, 8, 8});
  Value* a = g.add_input("a", ValueType{DType::kF32, {5, 1, 3, 4}, nullptr}).value();
  Value* b = g.add_input("b", ValueType{DType::kF32, {6, 4, 7}, nullptr}).value();
  CHECK(g.add_node("matmul", {a, b}, {}, "mm").value()->output()->shape() == Shape{5, 6, 3, 7});
  Value* v = g.add_input("v", ValueType{DType::kF32, {4}, nullptr}).value();
  CHECK(g.add_node("matmul", {a, v}, {}, "mv").value()->output()->shape() == Shape{5, 1, 3});
  Node* split = g.add_node("split", {x}, {{"axis", int64_t{1}}, {"sizes", std::vector<int64_t>{3, 5}}}, "split").value();
  REQUIRE(split->num_outputs() == 2);
  CHECK(split->output(1)->shape() == Shape{2, 5, 15, 15});
  CHECK(split->output(1)->name() == "split.1");
  Node* slice = g.add_node("slice", {x},
                           {{"axis", int64_t{-1}}, {"start", int64_t{-10}}, {"end", int64_t{100}}, {"step", int64_t{3}}},
                           "slice")
                    .value();
  CHECK(slice->output()->shape() == Shape{2, 8, 15, 4});
  Node* reshape = g.add_node("reshape", {x}, {{"shape", std::vector<int64_t>{2, -1, 5}}}, "reshape").value();
  CHECK(reshape->output()->shape() == Shape{2, 360, 5});
  CHECK_FALSE(g.add_node("reshape", {x}, {{"shape", std::vector<int64_t>{7, -1}}}, "bad").has_value());
}

TEST_CASE("quantize produces a quantized value type - qconv2d checks its operands") {
  Graph g;
  Value* x = g.add_input("x", ValueType{DType::kF32, {1, 3, 4, 4}, nullptr}).value();
  Node* q = g.add_node("quantize", {x},
                       {{"dtype", std::string("u8")}, {"scale", std::vector<double>{0.05}}, {"zero_point", std::vector<int64_t>{128}}},
                       "q")
                .value();
  REQUIRE(q->output()->type().quant != nullptr);
  CHECK(q->output()->dtype() == DType::kU8);
  CHECK(q->output()->type().quant->zero_points()[0] == 128);
  Tensor w = Tensor::zeros(DType::kI8, {2, 3, 1, 1}).value().with_quant(
      std::make_shared<const QuantParams>(QuantParams::per_axis(DType::kI8, 0, {0.1f, 0.2f}, {}).value()));
  Value* wq = g.add_constant("w", w).value();
  Node* qc = g.add_node("qconv2d", {q->output(), wq},
                        {{"out_dtype", std::string("u8")}, {"out_scale", 0.1}, {"out_zero_point", int64_t{0}}}, "qc")
                 .value();
  CHECK(qc->output()->dtype() == DType::kU8);
  CHECK(qc->output()->shape() == Shape{1, 2, 4, 4});
  // A float activation is not a valid qconv2d operand.
  CHECK_FALSE(g.add_node("qconv2d", {x, wq}, {}, "bad").has_value());
  // A zero output scale is caught by the QuantParams factory.
  auto zero = g.add_node("qconv2d", {q->output(), wq}, {{"out_dtype", std::string("u8")}, {"out_scale", 0.0}}, "bad");
  CHECK(zero.status().message().find("scale[0] = 0") != std::string::npos);
  auto zero_q = g.add_node("quantize", {x}, {{"scale", std::vector<double>{0.0}}}, "bad");
  CHECK_FALSE(zero_q.has_value());
  CHECK(g.add_node("dequantize", {qc->output()}, {}, "dq").value()->output()->dtype() == DType::kF32);
}

TEST_CASE("replace_all_uses_with and remove_node rewrite the graph") {
  Graph g = test::small_cnn();
  Value* relu = g.find_value("relu1");
  Value* conv1 = g.find_value("conv1");
  // Bypass the relu: every user of relu now uses conv1.
  g.replace_all_uses_with(relu, conv1);
  CHECK_FALSE(relu->has_uses());
  CHECK(conv1->uses().size() == 3);
  Node* relu_node = g.find_node("relu1");
  REQUIRE(g.remove_node(relu_node).is_ok());
  CHECK(g.find_node("relu1") == nullptr);
  CHECK(verify(g).is_ok());
  // A node whose output is still used cannot be removed.
  Status s = g.remove_node(g.find_node("conv1"));
  CHECK(s.code() == StatusCode::kFailedPrecondition);
  CHECK(s.message().find("still has") != std::string::npos);
  // Graph outputs are uses too.
  Value* fc = g.find_value("fc");
  CHECK_FALSE(g.remove_node(fc->producer()).is_ok());
}

TEST_CASE("dead code and unused constants are removed") {
  Graph g = test::small_cnn();
  Value* x = g.inputs()[0];
  g.add_node("sigmoid", {x}, {}, "unused1").value();
  Value* t = g.add_node("tanh", {x}, {}, "unused2").value()->output();
  g.add_node("relu", {t}, {}, "unused3").value();
  g.add_constant("orphan", test::filled({3})).value();
  CHECK(g.remove_dead_nodes() == 3);
  CHECK(g.remove_unused_constants() == 1);
  CHECK(g.num_nodes() == 6);
  CHECK(verify(g).is_ok());
}

TEST_CASE("insertion before a node, topological sort and clone") {
  Graph g = test::small_cnn();
  Node* conv2 = g.find_node("conv2");
  Value* relu = g.find_value("relu1");
  Node* extra = g.add_node("sigmoid", {relu}, {}, "gate", conv2).value();
  conv2->replace_input(0, extra->output());
  CHECK(verify(g).is_ok());
  // Append a node at the end and make an earlier node use it: out of order.
  Node* late = g.add_node("tanh", {relu}, {}, "late").value();
  conv2->replace_input(0, late->output());
  CHECK_FALSE(verify(g).is_ok());
  REQUIRE(g.topological_sort().is_ok());
  CHECK(verify(g).is_ok());
  Graph copy = g.clone();
  CHECK(verify(copy).is_ok());
  CHECK(copy.num_nodes() == g.num_nodes());
  CHECK(copy.find_value("conv1.weight")->constant().raw_data() == g.find_value("conv1.weight")->constant().raw_data());
  // The clone is independent: rewriting it leaves the original alone.
  copy.replace_all_uses_with(copy.find_value("late"), copy.find_value("relu1"));
  CHECK(g.find_value("late")->has_uses());
  Graph moved = std::move(copy);
  CHECK(verify(moved).is_ok());
  CHECK(moved.find_node("conv1")->owner() == &moved);
}

TEST_CASE("names are made unique") {
  Graph g = test::small_cnn();
  Node* n = g.add_node("relu", {g.find_value("conv1")}, {}, "conv1").value();
  CHECK(n->name() == "conv1_1");
  CHECK(n->output()->name() == "conv1_1");
}

TEST_CASE("set_input shape then infer_types re-propagates the batch") {
  Graph g = test::small_cnn();
  g.inputs()[0]->set_type(ValueType{DType::kF32, {5, 3, 8, 8}, nullptr});
  REQUIRE(g.infer_types().is_ok());
  CHECK(g.find_value("fc")->shape() == Shape{5, 10});
  CHECK(verify(g).is_ok());
}

TEST_CASE("quant params flow through shape ops") {
  Graph g;
  Value* x = g.add_input("x", ValueType{DType::kF32, {2, 3, 4}, nullptr}).value();
  Node* q = g.add_node("quantize", {x},
                       {{"dtype", std::string("u8")}, {"scale", std::vector<double>{0.1}}, {"zero_point", std::vector<int64_t>{7}}},
                       "q")
                .value();
  Value* t = g.add_node("transpose", {q->output()}, {{"dim0", int64_t{0}}, {"dim1", int64_t{2}}}, "t").value()->output();
  Value* s = g.add_node("slice", {t}, {{"axis", int64_t{0}}, {"end", int64_t{2}}}, "s").value()->output();
  Value* cat = g.add_node("concat", {s, s}, {{"axis", int64_t{0}}}, "cat").value()->output();
  REQUIRE(cat->type().quant != nullptr);
  CHECK(*cat->type().quant == *q->output()->type().quant);
  CHECK(g.add_node("dequantize", {cat}, {}, "dq").has_value());

  // Per-axis params move with their axis and block channel-mixing ops.
  Node* qa = g.add_node("quantize", {x},
                        {{"dtype", std::string("i8")}, {"scale", std::vector<double>{0.1, 0.2, 0.3}}, {"axis", int64_t{1}}},
                        "qa")
                 .value();
  Value* p = g.add_node("permute", {qa->output()}, {{"perm", std::vector<int64_t>{1, 2, 0}}}, "p").value()->output();
  CHECK(p->type().quant->axis() == 0);
  auto mixed = g.add_node("reshape", {qa->output()}, {{"shape", std::vector<int64_t>{6, 4}}}, "r");
  REQUIRE_FALSE(mixed.has_value());
  CHECK(mixed.status().message().find("dequantize first") != std::string::npos);
  CHECK_FALSE(g.add_node("slice", {qa->output()}, {{"axis", int64_t{1}}, {"end", int64_t{2}}}, "bad").has_value());
  CHECK(g.add_node("slice", {qa->output()}, {{"axis", int64_t{2}}, {"end", int64_t{2}}}, "ok").has_value());
  CHECK_FALSE(g.add_node("reduce_mean", {x}, {{"axes", std::vector<int64_t>{}}}, "empty").has_value());
}

TEST_CASE("hostile attributes are errors, not overflow") {
  Graph g;
  Value* x = g.add_input("x", ValueType{DType::kF32, {1, 1, 8, 8}, nullptr}).value();
  Value* w = g.add_constant("w", test::filled({1, 1, 3, 3})).value();
  auto huge_pad = g.add_node("conv2d", {x, w}, {{"padding", std::vector<int64_t>{INT64_MAX, 0, INT64_MAX, 0}}}, "c");
  CHECK(huge_pad.status().message().find("out of range") != std::string::npos);
  auto huge_dil = g.add_node("conv2d", {x, w}, {{"dilation", std::vector<int64_t>{INT64_MAX / 2, 1}}}, "c");
  CHECK_FALSE(huge_dil.has_value());
  auto huge_shape = g.add_node("reshape", {x}, {{"shape", std::vector<int64_t>{INT64_MAX, INT64_MAX, 0}}}, "r");
  CHECK_FALSE(huge_shape.has_value());
  auto wrap = g.add_node("reshape", {x}, {{"shape", std::vector<int64_t>{4611686018427387904, 4, -1}}}, "r");
  CHECK_FALSE(wrap.has_value());
}

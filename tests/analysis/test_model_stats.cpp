// FLOPs, MACs, parameter counts and per-layer rows of analysis::compute_model_stats.
#include <catch2/catch.hpp>

#include "compress/analysis/model_stats.h"
#include "compress/analysis/stats_json.h"
#include "compress/analysis/stats_report.h"
#include "compress/ir/op_schema.h"
#include "compress/ir/sparse_layout.h"

namespace {

using namespace compress;
using ir::DType;

ir::ValueType f32(ir::Shape shape) {
  ir::ValueType t;
  t.shape = std::move(shape);
  return t;
}

ir::Tensor filled(ir::Shape shape, float value = 0.5f) {
  ir::Tensor t = ir::Tensor::zeros(DType::kF32, std::move(shape)).value();
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = value;
  return t;
}

ir::Value* input(ir::Graph& g, const std::string& name, ir::Shape shape) {
  return g.add_input(name, f32(std::move(shape))).value();
}
ir::Value* constant(ir::Graph& g, const std::string& name, ir::Tensor t) { return g.add_constant(name, t).value(); }
ir::Node* node(ir::Graph& g, const std::string& op, std::vector<ir::Value*> inputs, ir::AttributeMap attrs = {},
               const std::string& name = "n") {
  return g.add_node(op, inputs, std::move(attrs), name).value();
}
ir::Attribute ints(std::vector<int64_t> v) { return v; }

}  // namespace

TEST_CASE("conv2d cost: grouped, strided, with bias", "[analysis]") {
  ir::Graph g;
  ir::Value* x = input(g, "x", {2, 4, 9, 9});
  ir::Value* w = constant(g, "conv.weight", filled({6, 2, 3, 3}));
  ir::Value* b = constant(g, "conv.bias", filled({6}));
  ir::Node* conv = node(g, "conv2d", {x, w, b},
                        {{"groups", int64_t{2}}, {"stride", ints({2, 2})}, {"padding", ints({1, 1, 1, 1})}}, "conv");
  REQUIRE(conv->output()->shape() == ir::Shape{2, 6, 5, 5});
  // 300 output elements, each (Cin/groups)*kh*kw = 2*3*3 = 18 MACs; bias adds one per output.
  const analysis::NodeCost cost = analysis::node_cost(*conv);
  CHECK(cost.macs == 300 * 18);
  CHECK(cost.flops == 2 * 300 * 18 + 300);
}

TEST_CASE("conv2d cost: depthwise, dilated, no bias", "[analysis]") {
  ir::Graph g;
  ir::Value* x = input(g, "x", {1, 4, 8, 8});
  ir::Value* w = constant(g, "dw.weight", filled({4, 1, 3, 3}));
  ir::Node* conv = node(g, "conv2d", {x, w}, {{"groups", int64_t{4}}, {"dilation", ints({2, 2})}}, "dw");
  REQUIRE(conv->output()->shape() == ir::Shape{1, 4, 4, 4});
  CHECK(analysis::node_cost(*conv).macs == 64 * 9);
  CHECK(analysis::node_cost(*conv).flops == 2 * 64 * 9);
}

TEST_CASE("linear cost, 2-D and 3-D input", "[analysis]") {
  ir::Graph g;
  ir::Value* x2 = input(g, "x2", {3, 5});
  ir::Value* x3 = input(g, "x3", {2, 3, 5});
  ir::Value* w = constant(g, "fc.weight", filled({7, 5}));
  ir::Value* b = constant(g, "fc.bias", filled({7}));
  ir::Node* fc2 = node(g, "linear", {x2, w, b}, {}, "fc2");
  ir::Node* fc3 = node(g, "linear", {x3, w}, {}, "fc3");
  CHECK(analysis::node_cost(*fc2).macs == 3 * 7 * 5);
  CHECK(analysis::node_cost(*fc2).flops == 2 * 105 + 21);
  CHECK(analysis::node_cost(*fc3).macs == 2 * 3 * 7 * 5);
  CHECK(analysis::node_cost(*fc3).flops == 2 * 210);
}

TEST_CASE("matmul cost with batch broadcasting", "[analysis]") {
  ir::Graph g;
  ir::Value* a = input(g, "a", {2, 4, 3});
  ir::Value* b = input(g, "b", {3, 5});
  ir::Node* mm = node(g, "matmul", {a, b}, {}, "mm");
  REQUIRE(mm->output()->shape() == ir::Shape{2, 4, 5});
  CHECK(analysis::node_cost(*mm).macs == 40 * 3);
  CHECK(analysis::node_cost(*mm).flops == 240);
}

TEST_CASE("attention, pooling and elementwise costs", "[analysis]") {
  ir::Graph g;
  ir::Value* q = input(g, "q", {2, 4, 8, 16});
  ir::Value* k = input(g, "k", {2, 4, 10, 16});
  ir::Value* v = input(g, "v", {2, 4, 10, 16});
  ir::Node* att = node(g, "scaled_dot_product_attention", {q, k, v}, {}, "att");
  CHECK(analysis::node_cost(*att).flops == 4LL * 2 * 4 * 8 * 10 * 16);

  ir::Value* x = input(g, "x", {1, 4, 6, 6});
  ir::Node* relu = node(g, "relu", {x}, {}, "relu");
  CHECK(analysis::node_cost(*relu).flops == 144);
  CHECK(analysis::node_cost(*relu).macs == 0);
  ir::Node* pool = node(g, "max_pool2d", {x}, {{"kernel", ints({2, 2})}, {"stride", ints({2, 2})}}, "pool");
  CHECK(analysis::node_cost(*pool).flops == 36 * 4);
  ir::Node* gap = node(g, "adaptive_avg_pool2d", {x}, {{"output_size", ints({1, 1})}}, "gap");
  CHECK(analysis::node_cost(*gap).flops == 144);
  ir::Node* flat = node(g, "flatten", {x}, {}, "flat");
  CHECK(analysis::node_cost(*flat).flops == 0);
  CHECK(analysis::node_cost(*flat).counted);
}

TEST_CASE("every op of the op table has a FLOP rule", "[analysis]") {
  // A new op without a rule would silently count as 0 in reports.
  ir::Graph g;
  for (const ir::OpSchema& schema : ir::op_table()) {
    ir::Node* n = g.add_node_unchecked(std::string(schema.name), {}, {}, std::string(schema.name) + "_node", {});
    INFO(schema.name);
    CHECK(analysis::node_cost(*n).counted);
  }
}

TEST_CASE("model stats: params by dtype, op counts, per-layer rows", "[analysis]") {
  ir::Graph g;
  g.name = "tiny";
  ir::Value* x = input(g, "x", {1, 2, 5, 5});
  ir::Value* w = constant(g, "conv.weight", filled({4, 2, 3, 3}));
  ir::Value* b = constant(g, "conv.bias", filled({4}));
  ir::Value* h = node(g, "conv2d", {x, w, b}, {}, "conv")->output();
  h = node(g, "relu", {h}, {}, "relu")->output();
  h = node(g, "flatten", {h}, {}, "flatten")->output();
  // fc.weight is half zeros and stored as CSR.
  std::vector<float> fc(3 * 36, 0.0f);
  for (size_t i = 0; i < fc.size(); i += 2) fc[i] = 1.0f;
  ir::Tensor fc_csr = ir::to_csr_layout(ir::Tensor::from_vector(DType::kF32, {3, 36}, fc)).value();
  ir::Value* fw = constant(g, "fc.weight", fc_csr);
  ir::Value* fb = constant(g, "fc.bias", filled({3}));
  h = node(g, "linear", {h, fw, fb}, {}, "fc")->output();
  g.set_outputs({h});

  const analysis::ModelStats s = analysis::compute_model_stats(g);
  CHECK(s.name == "tiny");
  CHECK(s.num_nodes == 4);
  CHECK(s.num_params == 72 + 4 + 108 + 3);
  CHECK(s.params_by_dtype.at("f32") == 187);
  CHECK(s.op_counts.at("conv2d") == 1);
  CHECK(s.op_counts.at("linear") == 1);
  CHECK(s.flops == (2 * 648 + 36) + 36 + 0 + (2 * 108 + 3));
  CHECK(s.macs == 648 + 108);
  CHECK(s.uncounted_ops.empty());
  REQUIRE(s.inputs.size() == 1);
  CHECK(s.inputs[0].shape == ir::Shape{1, 2, 5, 5});

  REQUIRE(s.layers.size() == 4);
  const analysis::LayerStats& conv = s.layers[0];
  CHECK(conv.name == "conv");
  CHECK(conv.weight_name == "conv.weight");  // the largest constant, not the bias
  CHECK(conv.params == 76);
  CHECK(conv.bits_per_weight == 32.0);
  CHECK(conv.weight_sparsity == 0.0);
  CHECK(conv.weight_layout == "dense");
  CHECK(!s.layers[1].weight_dtype.has_value());

  const analysis::LayerStats& fcrow = s.layers[3];
  CHECK(fcrow.weight_layout == "csr");
  CHECK(fcrow.weight_sparsity == Approx(0.5));
  // 54 f32 values + 54 i32 column indices + 4 i64 row pointers over 108 elements.
  CHECK(fcrow.bits_per_weight == Approx((54 * 4 + 54 * 4 + 4 * 8) * 8.0 / 108.0));
  CHECK(s.weight_bytes == 72 * 4 + 4 * 4 + (54 * 4 + 54 * 4 + 4 * 8) + 3 * 4);

  const std::string text = analysis::format_model_stats(s);
  CHECK(text.find("conv.weight") == std::string::npos);  // rows are named by node
  CHECK(text.find("fc") != std::string::npos);
  CHECK(text.find("csr") != std::string::npos);
  CHECK(text.find("187") != std::string::npos);

  const nlohmann::json j = analysis::model_stats_to_json(s);
  CHECK(j["num_params"] == 187);
  CHECK(j["layers"][1]["dtype"].is_null());
  CHECK(j["layers"][3]["layout"] == "csr");
}

TEST_CASE("human-readable counts and sizes", "[analysis]") {
  CHECK(analysis::human_count(999) == "999");
  CHECK(analysis::human_count(1587) == "1.59 K");
  CHECK(analysis::human_count(2'500'000) == "2.5 M");
  CHECK(analysis::human_count(999'999) == "1 M");
  CHECK(analysis::human_bytes(100) == "100 B");
  CHECK(analysis::human_bytes(1536) == "1.5 KiB");
  CHECK(analysis::human_bytes(3ULL << 30) == "3.0 GiB");
}

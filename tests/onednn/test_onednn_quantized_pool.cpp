// max_pool2d on quantized u8/i8 values (Note [Max pooling on quantized values]): the reference pools the integer
// codes exactly as the f32 pool of the dequantized values would, the onednn backend matches it bit for bit
// without a fallback, and PTQ moves max pools onto u8 so that resnet's first-stage residual adds become qadds
// (Note [Max pooling on u8]).
#include <catch2/catch.hpp>

#include "compress/eval/dataset.h"
#include "compress/ir/verifier.h"
#include "compress/quant/calibration.h"
#include "compress/quant/layer_plan.h"
#include "native_ptq.h"
#include "onednn_test_util.h"

namespace compress::test {
namespace {

using ir::DType;
using ir::Value;

struct PoolCase {
  std::string name;
  ir::AttributeMap attrs;
};

std::vector<PoolCase> pool_cases() {
  using V = std::vector<int64_t>;
  return {
      {"k3s2p1 (resnet stem)", {{"kernel", V{3, 3}}, {"stride", V{2, 2}}, {"padding", V{1, 1, 1, 1}}}},
      {"k3s2p1 ceil", {{"kernel", V{3, 3}}, {"stride", V{2, 2}}, {"padding", V{1, 1, 1, 1}}, {"ceil_mode", int64_t{1}}}},
      {"k2s2", {{"kernel", V{2, 2}}, {"stride", V{2, 2}}}},
      {"k3x2 s1x2 dilated", {{"kernel", V{3, 2}}, {"stride", V{1, 2}}, {"padding", V{1, 1, 1, 1}},
                             {"dilation", V{2, 1}}}},
  };
}

// Input codes span the whole range, so padding (which must never win) is
// tested against qmin itself.
ir::Tensor pool_input(DType dtype, const std::shared_ptr<const ir::QuantParams>& params, uint32_t seed) {
  const int lo = dtype == DType::kU8 ? 0 : -128;
  return random_quantized({2, 19, 11, 13}, seed, *params, lo, lo + 255);
}

// Per-channel params along axis 1 (per_channel() is for weights, axis 0).
std::shared_ptr<const ir::QuantParams> channel_params(DType dtype) {
  std::vector<float> scales;
  std::vector<int32_t> zero_points;
  for (int c = 0; c < 19; ++c) {
    scales.push_back(0.01f + 0.003f * static_cast<float>(c));
    zero_points.push_back(dtype == DType::kU8 ? c * 7 : c - 9);
  }
  auto p = ir::QuantParams::create({dtype, ir::QuantGranularity::kPerAxis, 1, 0, scales, zero_points, {}, {}});
  REQUIRE(p.has_value());
  return std::make_shared<const ir::QuantParams>(std::move(*p));
}

TEST_CASE("u8/i8 max_pool2d equals the f32 max pool of the dequantized input, on reference and onednn") {
  for (DType dtype : {DType::kU8, DType::kI8}) {
    const std::vector<std::shared_ptr<const ir::QuantParams>> params_list = {
        per_tensor(dtype, 0.037f, dtype == DType::kU8 ? 121 : -5),
        channel_params(dtype),
    };
    for (const auto& params : params_list) {
      for (const PoolCase& c : pool_cases()) {
        INFO(ir::dtype_name(dtype) << " " << params->to_string() << " " << c.name);
        const ir::Tensor x = pool_input(dtype, params, 5);
        GraphBuilder q;
        Value* pooled = q.node("max_pool2d", {q.input("x", x.shape(), dtype, params)}, c.attrs, "pool");
        REQUIRE(pooled->dtype() == dtype);
        REQUIRE(pooled->type().quant != nullptr);
        CHECK(*pooled->type().quant == *params);
        q.outputs({q.node("dequantize", {pooled}, {}, "dq")});

        GraphBuilder f;
        Value* dq = f.node("dequantize", {f.input("x", x.shape(), dtype, params)}, {}, "dq");
        f.outputs({f.node("max_pool2d", {dq}, c.attrs, "pool")});

        const RunResult r = run_both(q.graph, {x});
        const RunResult want = run_both(f.graph, {x});
        CHECK(r.want[0].bitwise_equal(want.want[0]));  // reference: u8 pool == f32 pool
        CHECK(r.got[0].bitwise_equal(r.want[0]));       // onednn == reference
        CHECK(r.fallbacks.empty());
        bool integer_pool = false;
        for (const auto& s : r.report.steps) {
          const std::string integer = dtype == DType::kU8 ? " u8[" : " s8[";  // oneDNN's names
          integer_pool = integer_pool || (s.kind == "pooling" && s.detail.find(integer) != std::string::npos);
        }
        CHECK(integer_pool);
      }
    }
  }
}

TEST_CASE("max_pool2d rejects per-axis params that are not along the channels, and avg_pool2d quantized input") {
  GraphBuilder g;
  auto bad = ir::QuantParams::create({DType::kU8, ir::QuantGranularity::kPerAxis, 2, 0,
                                      std::vector<float>(6, 0.1f), std::vector<int32_t>(6, 0), 0, 255});
  REQUIRE(bad.has_value());
  Value* x = g.input("x", {1, 3, 6, 6}, DType::kU8, std::make_shared<const ir::QuantParams>(*bad));
  const ir::AttributeMap attrs = {{"kernel", std::vector<int64_t>{2, 2}}, {"stride", std::vector<int64_t>{2, 2}}};
  auto pooled = g.graph.add_node("max_pool2d", {x}, attrs, "pool");
  REQUIRE_FALSE(pooled.has_value());
  CHECK_THAT(pooled.status().message(), Catch::Contains("per-channel (axis 1)"));
  Value* y = g.input("y", {1, 3, 6, 6}, DType::kU8, per_tensor(DType::kU8, 0.1f, 0));
  auto avg = g.graph.add_node("avg_pool2d", {y}, attrs, "avg");
  REQUIRE_FALSE(avg.has_value());
  CHECK_THAT(avg.status().message(), Catch::Contains("float"));
}

// conv -> relu -> max_pool2d -> {conv -> add, add}: resnet's stem and first
// block. After PTQ the pool runs on u8, the block's conv reads it directly
// and the residual add is a qadd fused into the block's conv.
TEST_CASE("PTQ: a max pool feeding a residual block runs on u8 and the block's add becomes a qadd") {
  GraphBuilder g;
  Value* x = g.input("x", {1, 3, 16, 16});
  const ir::AttributeMap pad1 = {{"padding", std::vector<int64_t>{1, 1, 1, 1}}};
  Value* c0 = g.node("conv2d", {x, g.constant("w0", random_f32({8, 3, 3, 3}, 1)), g.constant("b0", random_f32({8}, 2))},
                     pad1, "stem");
  Value* r0 = g.node("relu", {c0}, {}, "stem_relu");
  Value* p = g.node("max_pool2d", {r0},
                    {{"kernel", std::vector<int64_t>{3, 3}}, {"stride", std::vector<int64_t>{2, 2}},
                     {"padding", std::vector<int64_t>{1, 1, 1, 1}}},
                    "pool");
  Value* c1 = g.node("conv2d", {p, g.constant("w1", random_f32({8, 8, 3, 3}, 3)), g.constant("b1", random_f32({8}, 4))},
                     pad1, "block_conv");
  Value* sum = g.node("add", {c1, p}, {}, "block_add");
  Value* r1 = g.node("relu", {sum}, {}, "block_relu");
  Value* c2 = g.node("conv2d", {r1, g.constant("w2", random_f32({4, 8, 1, 1}, 5)), g.constant("b2", random_f32({4}, 6))},
                     {}, "head");
  g.outputs({c2});

  auto data = eval::from_tensor(random_f32({16, 3, 16, 16}, 7, -2.0f, 2.0f), {}, "random").value();
  quant::CalibrationOptions opts;
  opts.progress = false;
  const auto nodes = quant::quantizable_nodes(g.graph);
  auto calib = quant::calibrate(g.graph, quant::values_to_observe(g.graph, nodes), *data, opts).value();
  auto layers = quant::plan_layers(g.graph, nodes, calib, native_ptq_plan()).value();
  ir::Graph int8 = g.graph.clone();
  REQUIRE(quant::convert_to_int8(int8, layers).is_ok());
  REQUIRE(ir::verify(int8).is_ok());

  const ir::Node* pool = int8.find_node("pool");
  REQUIRE(pool != nullptr);
  CHECK(pool->output()->dtype() == DType::kU8);
  CHECK(int8.find_node("block_conv")->input(0) == pool->output());
  const ir::Node* add = int8.find_node("block_add");
  REQUIRE(add != nullptr);
  CHECK(add->op() == "qadd");
  int quantizes = 0, dequantizes = 0;
  for (const ir::Node* n : int8.nodes()) {
    quantizes += n->op() == "quantize";
    dequantizes += n->op() == "dequantize";
  }
  CHECK(quantizes == 1);  // the image only
  CHECK(dequantizes == 0);

  const ir::Tensor input = random_f32({2, 3, 16, 16}, 8, -2.0f, 2.0f);
  const RunResult r = run_both(int8, {input});
  CHECK(r.got[0].bitwise_equal(r.want[0]));
  CHECK(r.fallbacks.empty());
  // The f32-pool form computes the same values (Note [Requantize after max pooling] does not apply here: the
  // pool also feeds the add, so that form keeps the u8 pool too).
  quant::Int8Options f32_pool;
  f32_pool.pool_before_requantize = true;
  ir::Graph other = g.graph.clone();
  REQUIRE(quant::convert_to_int8(other, layers, f32_pool).is_ok());
  CHECK(run_both(other, {input}).want[0].bitwise_equal(r.want[0]));
}

// The add's second operand is the conv's own input: the fused sum must not
// write over it while the conv reads it. Before the builder checked, both the
// f32 sum and the qadd sum did when x came from a conv in the same blocked
// layout (a reorder in between hid it).
TEST_CASE("a residual add of a conv's own input is not fused in place over that input (f32 and qadd)") {
  // x is computed (a graph input's buffer is never written over).
  GraphBuilder f;
  Value* x = f.node("conv2d", {f.input("x0", {2, 8, 9, 9}), f.constant("w0", random_f32({8, 8, 1, 1}, 7))}, {}, "conv0");
  Value* y = f.node("conv2d", {x, f.constant("w", random_f32({8, 8, 3, 3}, 1)), f.constant("b", random_f32({8}, 2))},
                    {{"padding", std::vector<int64_t>{1, 1, 1, 1}}}, "conv");
  f.outputs({f.node("add", {y, x}, {}, "add")});
  const ir::Tensor input = random_f32({2, 8, 9, 9}, 3);
  const RunResult fr = run_both(f.graph, {input});
  for (const auto& s : fr.report.steps) CHECK(s.detail.find("in place") == std::string::npos);
  CHECK(compare(fr.got[0], fr.want[0], {1e-5, 1e-5}).worst <= 1.0);

  GraphBuilder q;
  auto xq = per_tensor(DType::kU8, 0.02f, 110);
  auto wq = per_channel(DType::kI8, std::vector<float>(8, 0.004f), std::vector<int32_t>(8, 0));
  Value* qx = q.node("qconv2d",
                     {q.input("x0", {2, 8, 9, 9}, DType::kU8, xq),
                      q.constant("w0", random_int8_weights({8, 8, 1, 1}, 8, *wq, 127))},
                     {{"out_dtype", std::string("u8")}, {"out_scale", 0.02}, {"out_zero_point", int64_t{110}}},
                     "qconv0");
  Value* qy = q.node("qconv2d",
                     {qx, q.constant("w", random_int8_weights({8, 8, 3, 3}, 4, *wq, 127)),
                      q.constant("b", random_f32({8}, 5))},
                     {{"padding", std::vector<int64_t>{1, 1, 1, 1}}, {"out_dtype", std::string("u8")},
                      {"out_scale", 0.05}, {"out_zero_point", int64_t{7}}},
                     "qconv");
  Value* sum = q.node("qadd", {qy, qx},
                      {{"out_dtype", std::string("u8")}, {"out_scale", 0.06}, {"out_zero_point", int64_t{90}}}, "qadd");
  q.outputs({q.node("dequantize", {sum}, {}, "dq")});
  const ir::Tensor codes = random_quantized({2, 8, 9, 9}, 6, *xq, 0, 255);
  const RunResult r = run_both(q.graph, {codes});
  for (const auto& s : r.report.steps) CHECK(s.detail.find("in place") == std::string::npos);
  CHECK(r.got[0].bitwise_equal(r.want[0]));
}

}  // namespace
}  // namespace compress::test

// Every f32/bf16 op of the onednn backend against the reference backend, with a stated bound per op and dtype.
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>

#include "onednn_test_util.h"

namespace compress::test {
namespace {

using ir::DType;
using ir::Tensor;
using ir::Value;
using runtime::OnednnOptions;

// Note [onednn op bounds] (see Note [onednn error bounds] for the formula)
//  class            ops                                              f32              bf16 (compute or data in bf16)
//  exact            relu, relu6, clamp, max pools, add/sub/mul/div,  0                rtol 2^-8 (one bf16 rounding)
//                   concat, split, slice, reshape, permute, embedding
//  gemm             conv2d, linear, matmul (f32 sums in another      rtol 1e-5,       rtol 1e-2, atol 1e-2
//                   order than the reference's double sums)          atol 2e-6
//  norm             batch_norm, layer_norm, avg pools, reduce_mean   rtol 1e-5,       rtol 1e-2, atol 1e-2
//                                                                    atol 1e-6
//  transcendental   sigmoid, silu, tanh, gelu, hardswish,            rtol 1e-5,       rtol 1e-2, atol 1e-3
//                   hardsigmoid, softmax (oneDNN's polynomial         atol 1e-6
//                   approximations)
// bf16 cases feed the op through an identity 1x1 conv (or identity linear)
// whose bf16 output is exact because the inputs are bf16-representable; the
// op then reads bf16 data and writes bf16.
const Bound kExact{0, 0};
const Bound kGemm{1e-5, 2e-6};
const Bound kNorm{1e-5, 1e-6};
const Bound kTranscendental{1e-5, 1e-6};
const Bound kBf16Exact{1.001 / 256, 0};
const Bound kBf16Gemm{1e-2, 1e-2};
const Bound kBf16Norm{1e-2, 1e-2};
const Bound kBf16Transcendental{1e-2, 1e-3};

// x (rank 4) through an identity 1x1 conv, or (other ranks) an identity linear.
Value* identity_entry(GraphBuilder& g, Value* x) {
  const ir::Shape& s = x->shape();
  if (s.size() == 4) return g.node("conv2d", {x, g.constant("id_w", identity_conv_weight(s[1]))}, {}, "entry");
  return g.node("linear", {x, g.constant("id_w", identity_matrix(s.back()))}, {}, "entry");
}

// A single-op graph on one f32 input, checked in f32 (standalone), and in bf16
// with the op reading bf16 data (unfused, and fused into the entry when it can be).
void check_unary(const std::string& op, ir::Shape shape, ir::AttributeMap attrs, Bound f32, Bound bf16,
                 float lo = -3.0f, float hi = 3.0f) {
  {
    GraphBuilder g;
    Value* x = g.input("x", shape);
    g.outputs({g.node(op, {x}, attrs, op)});
    INFO(op << " f32");
    check_against_reference(g.graph, {random_f32(shape, 1, lo, hi)}, f32_options(), f32);
  }
  for (bool fuse : {false, true}) {
    GraphBuilder g;
    Value* x = g.input("x", shape);
    g.outputs({g.node(op, {identity_entry(g, x)}, attrs, op)});
    INFO(op << " bf16, fuse " << fuse);
    check_against_reference(g.graph, {random_f32(shape, 2, lo, hi, true)}, bf16_options(fuse), bf16);
  }
  {
    // f32 post-op form (fused into the entry conv / linear).
    GraphBuilder g;
    Value* x = g.input("x", shape);
    g.outputs({g.node(op, {identity_entry(g, x)}, attrs, op)});
    INFO(op << " f32 post-op");
    const Comparison c = check_against_reference(g.graph, {random_f32(shape, 3, lo, hi)}, f32_options(), f32);
    (void)c;
  }
}

}  // namespace

TEST_CASE("eltwise ops, standalone and as post-ops, f32 and bf16", "[onednn][ops]") {
  const ir::Shape img{2, 16, 5, 7};
  check_unary("relu", img, {}, kExact, kBf16Exact);
  check_unary("relu6", img, {}, kExact, kBf16Exact, -8.0f, 8.0f);
  check_unary("clamp", img, {{"min", -0.5}, {"max", 1.25}}, kExact, kBf16Exact);
  check_unary("clamp", img, {{"min", 0.0}}, kExact, kBf16Exact);
  check_unary("sigmoid", img, {}, kTranscendental, kBf16Transcendental, -8.0f, 8.0f);
  check_unary("silu", img, {}, kTranscendental, kBf16Transcendental, -8.0f, 8.0f);
  check_unary("tanh", img, {}, kTranscendental, kBf16Transcendental);
  check_unary("hardswish", img, {}, kTranscendental, kBf16Transcendental, -5.0f, 5.0f);
  check_unary("hardsigmoid", img, {}, kTranscendental, kBf16Transcendental, -5.0f, 5.0f);
  check_unary("gelu", img, {}, kTranscendental, kBf16Transcendental);
  check_unary("gelu", {3, 5, 24}, {{"approximate", std::string("tanh")}}, kTranscendental, kBf16Transcendental);
}

TEST_CASE("conv2d: strided, padded (asymmetric), dilated, grouped, depthwise, with and without bias", "[onednn][ops]") {
  struct ConvCase {
    ir::Shape x, w;
    ir::AttributeMap attrs;
    bool bias;
  };
  const std::vector<ConvCase> cases = {
      {{2, 3, 17, 15}, {16, 3, 3, 3}, {{"padding", std::vector<int64_t>{1, 1, 1, 1}}}, true},
      {{1, 8, 16, 16},
       {24, 8, 3, 3},
       {{"stride", std::vector<int64_t>{2, 2}}, {"padding", std::vector<int64_t>{0, 1, 2, 1}}},
       false},
      {{1, 16, 12, 12},
       {16, 16, 3, 3},
       {{"dilation", std::vector<int64_t>{2, 2}}, {"padding", std::vector<int64_t>{2, 2, 2, 2}}},
       true},
      {{2, 32, 9, 9}, {32, 1, 3, 3}, {{"groups", int64_t{32}}, {"padding", std::vector<int64_t>{1, 1, 1, 1}}}, true},
      {{1, 16, 9, 9}, {32, 4, 3, 3}, {{"groups", int64_t{4}}, {"stride", std::vector<int64_t>{2, 1}}}, true},
      {{1, 8, 10, 10}, {16, 1, 5, 5}, {{"groups", int64_t{8}}, {"padding", std::vector<int64_t>{2, 2, 2, 2}}}, false},
      {{3, 64, 7, 7}, {128, 64, 1, 1}, {}, true},
  };
  int index = 0;
  for (const ConvCase& c : cases) {
    for (const OnednnOptions& options : {f32_options(), bf16_options()}) {
      const bool bf16 = options.compute == runtime::OnednnCompute::kBF16;
      GraphBuilder g;
      Value* x = g.input("x", c.x);
      std::vector<Value*> ins = {x, g.constant("w", random_f32(c.w, 10 + index, -0.5f, 0.5f))};
      if (c.bias) ins.push_back(g.constant("b", random_f32({c.w[0]}, 20 + index)));
      g.outputs({g.node("conv2d", ins, c.attrs, "conv")});
      INFO("conv case " << index << (bf16 ? " bf16" : " f32"));
      check_against_reference(g.graph, {random_f32(c.x, 30 + index)}, options, bf16 ? kBf16Gemm : kGemm);
    }
    ++index;
  }
}

TEST_CASE("linear (2-D and 3-D inputs) and matmul (batched, broadcast, constant operand)", "[onednn][ops]") {
  for (const OnednnOptions& options : {f32_options(), bf16_options()}) {
    const Bound bound = options.compute == runtime::OnednnCompute::kBF16 ? kBf16Gemm : kGemm;
    {
      GraphBuilder g;
      Value* x = g.input("x", {4, 40});
      g.outputs(
          {g.node("linear", {x, g.constant("w", random_f32({24, 40}, 1)), g.constant("b", random_f32({24}, 2))})});
      check_against_reference(g.graph, {random_f32({4, 40}, 3)}, options, bound);
    }
    {
      GraphBuilder g;
      Value* x = g.input("x", {2, 7, 32});
      g.outputs({g.node("linear", {x, g.constant("w", random_f32({48, 32}, 4))})});
      check_against_reference(g.graph, {random_f32({2, 7, 32}, 5)}, options, bound);
    }
    {
      GraphBuilder g;
      Value* a = g.input("a", {2, 3, 5, 16});
      Value* b = g.input("b", {2, 3, 16, 9});
      g.outputs({g.node("matmul", {a, b})});
      check_against_reference(g.graph, {random_f32({2, 3, 5, 16}, 6), random_f32({2, 3, 16, 9}, 7)}, options, bound);
    }
    {
      GraphBuilder g;  // the second operand broadcasts over the batch
      Value* a = g.input("a", {4, 6, 8});
      Value* b = g.input("b", {8, 5});
      g.outputs({g.node("matmul", {a, b})});
      check_against_reference(g.graph, {random_f32({4, 6, 8}, 8), random_f32({8, 5}, 9)}, options, bound);
    }
    {
      GraphBuilder g;  // a constant second operand is reordered once, like a weight
      Value* a = g.input("a", {3, 12});
      g.outputs({g.node("matmul", {a, g.constant("b", random_f32({12, 10}, 10))})});
      check_against_reference(g.graph, {random_f32({3, 12}, 11)}, options, bound);
    }
  }
}

TEST_CASE("binary ops: same shape, channel and scalar broadcast, first-operand broadcast", "[onednn][ops]") {
  for (const char* op : {"add", "sub", "mul", "div"}) {
    for (bool bf16 : {false, true}) {
      if (bf16 && skip_bf16()) continue;
      const OnednnOptions options = bf16 ? bf16_options(false) : f32_options();
      const Bound bound = bf16 ? kBf16Exact : kExact;
      INFO(op << (bf16 ? " bf16" : " f32"));
      {
        GraphBuilder g;
        Value* a = g.input("a", {2, 16, 6, 6});
        Value* b = g.input("b", {2, 16, 6, 6});
        Value* ea = bf16 ? identity_entry(g, a) : a;
        g.outputs({g.node(op, {ea, b})});
        check_against_reference(
            g.graph, {random_f32({2, 16, 6, 6}, 1, -2, 2, true), random_f32({2, 16, 6, 6}, 2, 0.5f, 2, true)}, options,
            bound);
      }
      {
        GraphBuilder g;  // a per-channel constant (SE blocks, scales)
        Value* a = g.input("a", {2, 16, 6, 6});
        Value* ea = bf16 ? identity_entry(g, a) : a;
        g.outputs({g.node(op, {ea, g.constant("c", random_f32({16, 1, 1}, 3, 0.5f, 2, true))})});
        check_against_reference(g.graph, {random_f32({2, 16, 6, 6}, 4, -2, 2, true)}, options, bound);
      }
      {
        GraphBuilder g;  // a scalar
        Value* a = g.input("a", {3, 20});
        g.outputs({g.node(op, {a, g.constant("s", Tensor::scalar_f32(1.5f))})});
        check_against_reference(g.graph, {random_f32({3, 20}, 5)}, options, kExact);
      }
    }
  }
  {
    GraphBuilder g;  // add whose first operand broadcasts: the operands swap
    Value* a = g.input("a", {1, 16, 1, 1});
    Value* b = g.input("b", {2, 16, 4, 4});
    g.outputs({g.node("add", {a, b})});
    check_against_reference(g.graph, {random_f32({1, 16, 1, 1}, 6), random_f32({2, 16, 4, 4}, 7)}, f32_options(),
                            kExact);
  }
  {
    GraphBuilder g;  // sub whose first operand broadcasts has no oneDNN form: reference fallback
    Value* a = g.input("a", {1, 4});
    Value* b = g.input("b", {3, 4});
    g.outputs({g.node("sub", {a, b}, {}, "bsub")});
    RunResult r = run_both(g.graph, {random_f32({1, 4}, 8), random_f32({3, 4}, 9)});
    CHECK(compare(r.got[0], r.want[0], kExact).worst == 0);
    REQUIRE(r.fallbacks.size() == 1);
    CHECK(r.fallbacks[0].node == "bsub");
    CHECK_THAT(r.fallbacks[0].reason, Catch::Contains("broadcasts"));
  }
}

TEST_CASE("pooling: max (padding, dilation, ceil mode), avg (count_include_pad both ways), adaptive", "[onednn][ops]") {
  struct PoolCase {
    std::string op;
    ir::Shape x;
    ir::AttributeMap attrs;
    Bound f32, bf16;
    bool fallback;
  };
  using V = std::vector<int64_t>;
  const std::vector<PoolCase> cases = {
      {"max_pool2d",
       {2, 16, 13, 13},
       {{"kernel", V{3, 3}}, {"stride", V{2, 2}}, {"padding", V{1, 1, 1, 1}}},
       kExact,
       kBf16Exact,
       false},
      {"max_pool2d",
       {1, 16, 14, 14},
       {{"kernel", V{3, 3}}, {"stride", V{2, 2}}, {"ceil_mode", int64_t{1}}},
       kExact,
       kBf16Exact,
       false},
      {"max_pool2d",
       {1, 16, 12, 12},
       {{"kernel", V{2, 2}}, {"stride", V{1, 1}}, {"dilation", V{2, 2}}},
       kExact,
       kBf16Exact,
       false},
      {"avg_pool2d",
       {2, 16, 9, 9},
       {{"kernel", V{3, 3}}, {"stride", V{2, 2}}, {"padding", V{1, 1, 1, 1}}},
       kNorm,
       kBf16Norm,
       false},
      {"avg_pool2d",
       {2, 16, 9, 9},
       {{"kernel", V{3, 3}}, {"stride", V{2, 2}}, {"padding", V{1, 1, 1, 1}}, {"count_include_pad", int64_t{0}}},
       kNorm,
       kBf16Norm,
       false},
      {"avg_pool2d",
       {1, 16, 10, 10},
       {{"kernel", V{3, 3}}, {"stride", V{2, 2}}, {"ceil_mode", int64_t{1}}, {"count_include_pad", int64_t{0}}},
       kNorm,
       kBf16Norm,
       false},
      {"adaptive_avg_pool2d", {2, 32, 7, 7}, {{"output_size", V{1, 1}}}, kNorm, kBf16Norm, false},
      {"adaptive_avg_pool2d", {1, 16, 8, 12}, {{"output_size", V{2, 3}}}, kNorm, kBf16Norm, false},
      {"adaptive_max_pool2d", {1, 16, 8, 8}, {{"output_size", V{4, 4}}}, kExact, kBf16Exact, false},
      // Uneven bins: no single oneDNN window, so the reference runs it.
      {"adaptive_avg_pool2d", {1, 16, 7, 7}, {{"output_size", V{3, 3}}}, kExact, kExact, true},
  };
  int index = 0;
  for (const PoolCase& c : cases) {
    INFO("pool case " << index << " " << c.op);
    {
      GraphBuilder g;
      Value* x = g.input("x", c.x);
      g.outputs({g.node(c.op, {x}, c.attrs, "pool")});
      RunResult r = run_both(g.graph, {random_f32(c.x, 40 + index)});
      const Comparison cmp = compare(r.got[0], r.want[0], c.f32);
      INFO(cmp.to_string() << "\n" << r.report.to_string());
      CHECK(cmp.worst <= 1.0);
      CHECK(r.fallbacks.size() == (c.fallback ? 1u : 0u));
      if (c.fallback) CHECK_THAT(r.fallbacks[0].reason, Catch::Contains("uneven bins"));
    }
    if (!c.fallback) {
      GraphBuilder g;
      Value* x = g.input("x", c.x);
      g.outputs({g.node(c.op, {identity_entry(g, x)}, c.attrs, "pool")});
      check_against_reference(g.graph, {random_f32(c.x, 60 + index, -1, 1, true)}, bf16_options(), c.bf16);
    }
    ++index;
  }
}

TEST_CASE("batch_norm (standalone, with fused relu) and layer_norm (1 or 2 dims, optional affine)", "[onednn][ops]") {
  const int64_t c = 24;
  for (bool bf16 : {false, true}) {
    if (bf16 && skip_bf16()) continue;
    const OnednnOptions options = bf16 ? bf16_options() : f32_options();
    for (bool relu : {false, true}) {
      GraphBuilder g;
      Value* x = g.input("x", {2, c, 5, 5});
      Value* e = bf16 ? identity_entry(g, x) : x;
      // Not after a conv's only use, so it stays a batch-norm primitive.
      Value* bn =
          g.node("batch_norm",
                 {e, g.constant("gamma", random_f32({c}, 1, 0.5f, 1.5f)), g.constant("beta", random_f32({c}, 2)),
                  g.constant("mean", random_f32({c}, 3)), g.constant("var", random_f32({c}, 4, 0.5f, 2.0f))},
                 {}, "bn");
      Value* y = relu ? g.node("relu", {bn}) : bn;
      g.outputs(bf16 ? std::vector<Value*>{y, e} : std::vector<Value*>{y});
      INFO("batch_norm relu " << relu << " bf16 " << bf16);
      RunResult r = run_both(g.graph, {random_f32({2, c, 5, 5}, 5, -2, 2, true)}, options);
      const Comparison cmp = compare(r.got[0], r.want[0], bf16 ? kBf16Norm : kNorm);
      INFO(cmp.to_string() << "\n" << r.report.to_string());
      CHECK(cmp.worst <= 1.0);
      CHECK(r.fallbacks.empty());
      if (relu) CHECK(r.report.fused_nodes >= 1);
    }
    for (int64_t dims : {int64_t{1}, int64_t{2}}) {
      for (int affine = 0; affine < 3; ++affine) {
        GraphBuilder g;
        Value* x = g.input("x", {3, 6, 32});
        Value* e = bf16 ? identity_entry(g, x) : x;
        const ir::Shape ns = dims == 1 ? ir::Shape{32} : ir::Shape{6, 32};
        std::vector<Value*> ins = {e};
        if (affine >= 1) ins.push_back(g.constant("w", random_f32(ns, 6, 0.5f, 1.5f)));
        if (affine >= 2) ins.push_back(g.constant("b", random_f32(ns, 7)));
        g.outputs({g.node("layer_norm", ins, {{"normalized_ndim", dims}}, "ln")});
        INFO("layer_norm dims " << dims << " affine " << affine << " bf16 " << bf16);
        check_against_reference(g.graph, {random_f32({3, 6, 32}, 8, -2, 2, true)}, options, bf16 ? kBf16Norm : kNorm);
      }
    }
  }
}

TEST_CASE("rms_norm runs natively as a reduction and a global-stats layer norm (1 or 2 dims, optional weight)",
          "[onednn][ops]") {
  for (bool bf16 : {false, true}) {
    if (bf16 && skip_bf16()) continue;
    const OnednnOptions options = bf16 ? bf16_options() : f32_options();
    for (int64_t dims : {int64_t{1}, int64_t{2}}) {
      for (bool weighted : {false, true}) {
        GraphBuilder g;
        Value* x = g.input("x", {3, 6, 32});
        Value* e = bf16 ? identity_entry(g, x) : x;
        const ir::Shape ns = dims == 1 ? ir::Shape{32} : ir::Shape{6, 32};
        std::vector<Value*> ins = {e};
        if (weighted) ins.push_back(g.constant("w", random_f32(ns, 9, 0.5f, 1.5f)));
        g.outputs({g.node("rms_norm", ins, {{"normalized_ndim", dims}}, "rms")});
        INFO("rms_norm dims " << dims << " weighted " << weighted << " bf16 " << bf16);
        // Inputs offset from zero: the mean of squares is not the variance.
        RunResult r = run_both(g.graph, {random_f32({3, 6, 32}, 10, -1, 3, true)}, options);
        const Comparison cmp = compare(r.got[0], r.want[0], bf16 ? kBf16Norm : kNorm);
        INFO(cmp.to_string() << "\n" << r.report.to_string());
        CHECK(cmp.worst <= 1.0);
        CHECK(r.fallbacks.empty());
        bool reduction = false;
        for (const auto& step : r.report.steps) reduction = reduction || step.kind == "reduction";
        CHECK(reduction);
      }
    }
  }
}

TEST_CASE("softmax over any axis and reduce_mean with and without keepdim", "[onednn][ops]") {
  for (bool bf16 : {false, true}) {
    if (bf16 && skip_bf16()) continue;
    const OnednnOptions options = bf16 ? bf16_options() : f32_options();
    for (int64_t axis : {int64_t{-1}, int64_t{1}}) {
      GraphBuilder g;
      Value* x = g.input("x", {2, 16, 4, 4});
      g.outputs({g.node("softmax", {bf16 ? identity_entry(g, x) : x}, {{"axis", axis}})});
      INFO("softmax axis " << axis << " bf16 " << bf16);
      check_against_reference(g.graph, {random_f32({2, 16, 4, 4}, 1, -4, 4, true)}, options,
                              bf16 ? kBf16Transcendental : kTranscendental);
    }
    for (int64_t keep : {int64_t{0}, int64_t{1}}) {
      GraphBuilder g;
      Value* x = g.input("x", {2, 16, 4, 4});
      g.outputs({g.node("reduce_mean", {bf16 ? identity_entry(g, x) : x},
                        {{"axes", std::vector<int64_t>{2, 3}}, {"keepdim", keep}})});
      INFO("reduce_mean keepdim " << keep << " bf16 " << bf16);
      check_against_reference(g.graph, {random_f32({2, 16, 4, 4}, 2, -1, 1, true)}, options, bf16 ? kBf16Norm : kNorm);
    }
  }
}

// Note [Native reduce_mean]: consecutive axes of plain f32 data take the
// native loop, bit-identical to the reference; other axes oneDNN's reduction.
TEST_CASE("reduce_mean over consecutive axes of plain data is native and exact", "[onednn][ops]") {
  struct Case {
    std::vector<int64_t> axes;
    bool native;
  };
  for (const Case& c : {Case{{1}, true}, Case{{2, 3}, true}, Case{{-1}, true}, Case{{1, 2, 3}, true},
                        Case{{0}, true}, Case{{1, 3}, false}}) {
    for (int64_t keep : {int64_t{0}, int64_t{1}}) {
      GraphBuilder g;
      Value* x = g.input("x", {3, 7, 5, 6});
      g.outputs({g.node("reduce_mean", {x}, {{"axes", c.axes}, {"keepdim", keep}})});
      INFO("axes " << ir::shape_to_string(c.axes) << " keepdim " << keep);
      const RunResult r = run_both(g.graph, {random_f32({3, 7, 5, 6}, 4, -3, 3)}, f32_options());
      int native = 0;
      for (const auto& s : r.report.steps) native += s.kind == "native";
      CHECK(native == (c.native ? 1 : 0));
      if (c.native) {
        CHECK(r.got[0].bitwise_equal(r.want[0]));
      } else {
        CHECK(compare(r.got[0], r.want[0], kNorm).worst <= 1.0);
      }
    }
  }
}

TEST_CASE("data movement: concat, split, slice, reshape, flatten, transpose, permute, embedding", "[onednn][ops]") {
  for (bool bf16 : {false, true}) {
    if (bf16 && skip_bf16()) continue;
    const OnednnOptions options = bf16 ? bf16_options() : f32_options();
    const Bound bound = bf16 ? kBf16Exact : kExact;
    {
      GraphBuilder g;  // channel concat of blocked conv outputs, and of a plain input
      Value* x = g.input("x", {2, 16, 5, 5});
      Value* y = g.input("y", {2, 8, 5, 5});
      Value* a = g.node("conv2d", {x, g.constant("wa", random_f32({16, 16, 1, 1}, 1, -1, 1, true))});
      Value* b = g.node("conv2d", {x, g.constant("wb", random_f32({32, 16, 1, 1}, 2, -1, 1, true))});
      g.outputs({g.node("concat", {a, b, y}, {{"axis", int64_t{1}}})});
      check_against_reference(g.graph,
                              {random_f32({2, 16, 5, 5}, 3, -1, 1, true), random_f32({2, 8, 5, 5}, 4, -1, 1, true)},
                              options, bf16 ? kBf16Gemm : kGemm);
    }
    {
      GraphBuilder g;
      Value* x = g.input("x", {4, 6, 10});
      Value* e = bf16 ? identity_entry(g, x) : x;
      auto parts = g.node_outputs("split", {e}, {{"axis", int64_t{2}}, {"sizes", std::vector<int64_t>{3, 7}}});
      Value* s = g.node("slice", {parts[1]}, {{"axis", int64_t{1}}, {"start", int64_t{-5}}, {"step", int64_t{2}}});
      Value* r = g.node("reshape", {s}, {{"shape", std::vector<int64_t>{4, -1}}});
      Value* t = g.node("transpose", {parts[0]}, {{"dim0", int64_t{0}}, {"dim1", int64_t{2}}});
      Value* p = g.node("permute", {e}, {{"perm", std::vector<int64_t>{2, 0, 1}}});
      Value* f = g.node("flatten", {p}, {{"start_dim", int64_t{1}}});
      g.outputs({r, t, f, parts[0]});
      check_against_reference(g.graph, {random_f32({4, 6, 10}, 5, -1, 1, true)}, options, bound);
    }
    {
      GraphBuilder g;  // a blocked conv output read by reshape needs a plain copy first
      Value* x = g.input("x", {1, 16, 4, 4});
      Value* c = g.node("conv2d", {x, g.constant("w", random_f32({32, 16, 1, 1}, 6, -1, 1, true))});
      g.outputs({g.node("flatten", {c})});
      check_against_reference(g.graph, {random_f32({1, 16, 4, 4}, 7, -1, 1, true)}, options, bf16 ? kBf16Gemm : kGemm);
    }
  }
  {
    GraphBuilder g;
    Value* idx = g.input("tokens", {2, 5}, DType::kI64);
    g.outputs({g.node("embedding", {idx, g.constant("table", random_f32({11, 8}, 8))})});
    Tensor tokens = Tensor::from_vector<int64_t>(DType::kI64, {2, 5}, {0, 3, 10, 2, 2, 9, 1, 0, 5, 7});
    check_against_reference(g.graph, {tokens}, f32_options(), kExact);
  }
}

TEST_CASE("scaled_dot_product_attention from matmul + softmax + matmul: masks, causal, broadcast, scale",
          "[onednn][ops]") {
  struct AttentionCase {
    std::string name;
    ir::Shape q, k, v;
    ir::AttributeMap attrs;
    int mask;  // 0 none, 1 float constant, 2 bool constant, 3 float input
    ir::Shape mask_shape;
  };
  const std::vector<AttentionCase> cases = {
      {"plain", {2, 4, 7, 8}, {2, 4, 9, 8}, {2, 4, 9, 6}, {}, 0, {}},
      {"causal, explicit scale",
       {2, 3, 6, 8},
       {2, 3, 6, 8},
       {2, 3, 6, 8},
       {{"is_causal", int64_t{1}}, {"scale", 0.3}},
       0,
       {}},
      {"float mask", {1, 2, 5, 4}, {1, 2, 5, 4}, {1, 2, 5, 4}, {}, 1, {5, 5}},
      {"bool mask", {2, 2, 5, 4}, {2, 2, 5, 4}, {2, 2, 5, 4}, {}, 2, {2, 1, 5, 5}},
      {"float mask input, causal", {2, 6, 4}, {2, 6, 4}, {2, 6, 4}, {{"is_causal", int64_t{1}}}, 3, {2, 6, 6}},
      {"key/value batch broadcast", {2, 4, 5, 8}, {1, 4, 7, 8}, {1, 4, 7, 8}, {}, 0, {}},
  };
  int index = 0;
  for (const AttentionCase& c : cases) {
    GraphBuilder g;
    Value* q = g.input("q", c.q);
    Value* k = g.input("k", c.k);
    Value* v = g.input("v", c.v);
    std::vector<Value*> ins = {q, k, v};
    std::vector<Tensor> data = {random_f32(c.q, 1 + index), random_f32(c.k, 2 + index), random_f32(c.v, 3 + index)};
    if (c.mask == 1) ins.push_back(g.constant("mask", random_f32(c.mask_shape, 4, -2, 0)));
    if (c.mask == 2) {
      std::vector<uint8_t> keep(static_cast<size_t>(ir::numel(c.mask_shape)));
      for (size_t i = 0; i < keep.size(); ++i) keep[i] = (i * 7 % 3) != 0;
      for (size_t j = 0; j < 5; ++j) keep[j] = 0;  // the first row of image 0 fully masked: NaN, as the reference
      ins.push_back(g.constant("mask", Tensor::from_vector<uint8_t>(DType::kBool, c.mask_shape, keep)));
    }
    if (c.mask == 3) {
      ins.push_back(g.input("mask", c.mask_shape));
      data.push_back(random_f32(c.mask_shape, 5, -1, 1));
    }
    g.outputs({g.node("scaled_dot_product_attention", ins, c.attrs, "attention")});
    INFO("attention case " << c.name);
    check_against_reference(g.graph, data, f32_options(), kTranscendental);
    // bf16 mode keeps attention in f32, so the same bound holds.
    check_against_reference(g.graph, data, bf16_options(), kTranscendental);
    ++index;
  }
}

TEST_CASE("NaN and Inf inputs: propagated as the reference does, except where oneDNN documents otherwise",
          "[onednn][ops][nan]") {
  // Note [NaN through oneDNN]
  // The reference propagates NaN everywhere (PyTorch's CPU behaviour).
  // oneDNN 2.6's jit kernels do for conv, sigmoid, tanh, gelu and silu, but
  // not for relu (NaN -> 0), max pooling (NaN loses to the window's other
  // values) and softmax (a row holding NaN or +inf stays finite): their
  // max instructions return the non-NaN operand. PyTorch's own oneDNN path
  // behaves the same. docs/onednn.md lists this; this test keeps the list
  // honest (it fails if a oneDNN update starts propagating NaN there).
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  Tensor x = random_f32({1, 16, 4, 4}, 1);
  x.data<float>()[0] = nan;
  x.data<float>()[17] = inf;
  x.data<float>()[33] = -inf;
  x.data<float>()[50] = nan;
  struct NanCase {
    std::string op;
    ir::AttributeMap attrs;
    bool propagates;
  };
  const std::vector<NanCase> cases = {
      {"sigmoid", {}, true},
      {"tanh", {}, true},
      {"gelu", {}, true},
      {"silu", {}, true},
      {"relu", {}, false},
      {"softmax", {}, false},
      {"max_pool2d", {{"kernel", std::vector<int64_t>{2, 2}}, {"stride", std::vector<int64_t>{2, 2}}}, false},
  };
  for (const NanCase& c : cases) {
    GraphBuilder g;
    Value* in = g.input("x", {1, 16, 4, 4});
    g.outputs({g.node(c.op, {in}, c.attrs)});
    INFO(c.op);
    RunResult r = run_both(g.graph, {x});
    const Comparison cmp = compare(r.got[0], r.want[0], kTranscendental);
    INFO(cmp.to_string());
    if (c.propagates) {
      CHECK(cmp.nan_mismatches == 0);
      CHECK(cmp.worst <= 1.0);
    } else {
      CHECK(cmp.nan_mismatches > 0);
      // Wherever the reference is not NaN, the values agree.
      for (int64_t i = 0; i < r.want[0].numel(); ++i) {
        const float w = r.want[0].data<float>()[i], got = r.got[0].data<float>()[i];
        if (!std::isnan(w) && got != w) CHECK(std::fabs(got - w) <= 1e-5 * std::max(1.0f, std::fabs(w)));
      }
    }
  }
  {
    GraphBuilder g;
    Value* in = g.input("x", {1, 16, 4, 4});
    g.outputs({g.node("conv2d", {in, g.constant("w", random_f32({8, 16, 1, 1}, 2))})});
    check_against_reference(g.graph, {x}, f32_options(), kGemm);
  }
}

}  // namespace compress::test

// int8 on the onednn backend: qconv2d / qlinear / qmatmul / quantize / dequantize bit for bit against the reference
// contract.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <limits>

#include "onednn_test_util.h"

namespace compress::test {
namespace {

using ir::DType;
using ir::Tensor;
using ir::Value;

// Note [onednn int8 bound]
// The quantized contract (docs/ops.md) is exact f32 arithmetic after an
// exact int32 sum, and the backend reproduces it operation for operation
// (Note [int8 primitives and the quantized contract] in
// src/runtime/onednn/emit_quantized.cpp). So the bound is zero: integer
// outputs bit for bit, f32 outputs bit for bit. Only a fused transcendental
// post-op (gelu) on an f32 output is judged with the f32 eltwise bound.
const Bound kBitExact{0, 0};

struct QConvCase {
  std::string name;
  ir::Shape x, w;
  ir::AttributeMap attrs;
  DType act = DType::kU8;
  float sx = 0.02f;
  int32_t zx = 128;
  bool per_channel = true;
  int32_t zw = 0;  // weight zero point (per channel: c % 3 - 1 + zw)
  int bias = 0;    // 0 none, 1 f32, 2 i32
  std::string out = "u8";
  float so = 0.05f;
  int32_t zo = 3;
};

Comparison run_qconv(const QConvCase& c) {
  GraphBuilder g;
  auto xq = per_tensor(c.act, c.sx, c.zx);
  Value* x = g.input("x", c.x, c.act, xq);
  const int64_t o = c.w[0];
  std::vector<float> scales;
  std::vector<int32_t> zps;
  for (int64_t i = 0; i < o; ++i) {
    scales.push_back(0.004f + 0.0003f * static_cast<float>(i % 7));
    zps.push_back(c.per_channel ? static_cast<int32_t>(i % 3) - 1 + c.zw : c.zw);
  }
  auto wq = c.per_channel ? per_channel(DType::kI8, scales, zps) : per_tensor(DType::kI8, scales[0], c.zw);
  std::vector<Value*> ins = {x, g.constant("w", random_int8_weights(c.w, 11, *wq, 100))};
  if (c.bias == 1) ins.push_back(g.constant("b", random_f32({o}, 12, -0.5f, 0.5f)));
  if (c.bias == 2) {
    std::vector<int32_t> b(static_cast<size_t>(o));
    for (int64_t i = 0; i < o; ++i) b[static_cast<size_t>(i)] = static_cast<int32_t>((i * 7919) % 2001) - 1000;
    ins.push_back(g.constant("b", Tensor::from_vector<int32_t>(DType::kI32, {o}, b)));
  }
  ir::AttributeMap attrs = c.attrs;
  attrs["out_dtype"] = c.out;
  attrs["out_scale"] = static_cast<double>(c.so);
  attrs["out_zero_point"] = static_cast<int64_t>(c.zo);
  g.outputs({g.node("qconv2d", ins, attrs, "qconv")});
  const int lo = c.act == DType::kU8 ? 0 : -128, hi = c.act == DType::kU8 ? 255 : 127;
  INFO("qconv2d case " << c.name);
  // An s8 source without VNNI runs on the reference (Note [int8 and bf16 by CPU ISA]).
  return check_against_reference(g.graph, {random_quantized(c.x, 13, *xq, lo, hi)}, f32_options(), kBitExact,
                                 int8_conv_native(c.act));
}

}  // namespace

TEST_CASE("qconv2d is bit-exact: u8/s8 activations, zero points, per-channel scales, biases, outputs",
          "[onednn][int8]") {
  using V = std::vector<int64_t>;
  std::vector<QConvCase> cases;
  {
    QConvCase c{
        "u8 zp 128, per-channel, f32 bias, u8 out zp 3", {2, 16, 9, 9}, {32, 16, 3, 3}, {{"padding", V{1, 1, 1, 1}}}};
    c.bias = 1;
    cases.push_back(c);
  }
  {
    QConvCase c{"s8 zp 0, per-tensor, no bias, f32 out", {1, 32, 8, 8}, {16, 32, 1, 1}, {}};
    c.act = DType::kI8;
    c.zx = 0;
    c.per_channel = false;
    c.out = "f32";
    cases.push_back(c);
  }
  {
    QConvCase c{"s8 zp -5, weight zero points, i32 bias, s8 out zp -2",
                {1, 16, 7, 7},
                {24, 16, 3, 3},
                {{"stride", V{2, 2}}, {"padding", V{0, 1, 2, 1}}}};
    c.act = DType::kI8;
    c.zx = -5;
    c.zw = 2;
    c.bias = 2;
    c.out = "i8";
    c.zo = -2;
    cases.push_back(c);
  }
  {
    QConvCase c{"depthwise u8, padding reads the zero point",
                {2, 32, 10, 10},
                {32, 1, 3, 3},
                {{"groups", int64_t{32}}, {"padding", V{1, 1, 1, 1}}}};
    c.bias = 1;
    cases.push_back(c);
  }
  {
    QConvCase c{"grouped, dilated, f32 out with f32 bias",
                {1, 16, 12, 12},
                {16, 4, 3, 3},
                {{"groups", int64_t{4}}, {"dilation", V{2, 2}}, {"padding", V{2, 2, 2, 2}}}};
    c.out = "f32";
    c.bias = 1;
    cases.push_back(c);
  }
  for (const QConvCase& c : cases) run_qconv(c);
}

TEST_CASE("qconv2d rounding ties with an odd output zero point are bit-exact", "[onednn][int8]") {
  // sx * sw = 0.5 and out scale 1 put every odd accumulator exactly on .5,
  // where nearbyint(t) + zp and nearbyint(t + zp) differ for an odd zp.
  GraphBuilder g;
  auto xq = per_tensor(DType::kU8, 0.5f, 127);
  Value* x = g.input("x", {1, 8, 4, 4}, DType::kU8, xq);
  auto wq = per_tensor(DType::kI8, 1.0f, 0);
  g.outputs({g.node("qconv2d", {x, g.constant("w", random_int8_weights({8, 8, 1, 1}, 3, *wq, 3))},
                    {{"out_dtype", std::string("u8")}, {"out_scale", 1.0}, {"out_zero_point", int64_t{1}}})});
  const Tensor input = random_quantized({1, 8, 4, 4}, 4, *xq, 0, 255);
  RunResult r = run_both(g.graph, {input});
  const Comparison c = compare(r.got[0], r.want[0], kBitExact);
  INFO(c.to_string() << "\n" << r.report.to_string());
  CHECK(c.mismatched == 0);
  CHECK(r.fallbacks.empty());
  // The construction really produces ties: odd accumulators exist.
  GraphBuilder f;
  Value* fx = f.input("x", {1, 8, 4, 4}, DType::kU8, xq);
  f.outputs({f.node("qconv2d", {fx, f.constant("w", random_int8_weights({8, 8, 1, 1}, 3, *wq, 3))})});
  RunResult acc = run_both(f.graph, {input});
  int64_t ties = 0;
  for (int64_t i = 0; i < acc.want[0].numel(); ++i) {
    const float real = acc.want[0].data<float>()[i];
    ties += real != std::floor(real);
  }
  CHECK(ties > 20);
}

TEST_CASE("qconv2d whose centered weights do not fit s8 falls back to the reference, named", "[onednn][int8]") {
  GraphBuilder g;
  auto xq = per_tensor(DType::kU8, 0.02f, 128);
  Value* x = g.input("x", {1, 4, 5, 5}, DType::kU8, xq);
  auto wq = per_tensor(DType::kI8, 0.01f, -100);  // 100 - (-100) = 200 > 127
  g.outputs({g.node("qconv2d", {x, g.constant("w", random_quantized({8, 4, 3, 3}, 7, *wq, 90, 110))},
                    {{"out_dtype", std::string("f32")}}, "wide_conv")});
  RunResult r = run_both(g.graph, {random_quantized({1, 4, 5, 5}, 8, *xq, 0, 255)});
  CHECK(compare(r.got[0], r.want[0], kBitExact).worst == 0);
  REQUIRE(r.fallbacks.size() == 1);
  CHECK(r.fallbacks[0].node == "wide_conv");
  CHECK_THAT(r.fallbacks[0].reason, Catch::Contains("does not fit s8"));
}

// Note [int8 and bf16 by CPU ISA]: the ctest entry "... (ONEDNN_MAX_CPU_ISA=AVX2)"
// runs this on a VNNI machine as a CPU without VNNI too.
TEST_CASE("int8 layers with weights beyond what this CPU's int8 kernels sum exactly run on the reference, named",
          "[onednn][int8]") {
  const runtime::OnednnCpuSupport& cpu = runtime::onednn_cpu_support();
  INFO("oneDNN ISA " << cpu.isa << ", exact int8 weights within +-" << cpu.int8_weight_limit);
  for (int peak : {64, 127}) {
    GraphBuilder g;
    auto xq = per_tensor(DType::kU8, 0.02f, 0);
    Value* x = g.input("x", {2, 3, 96}, DType::kU8, xq);
    auto wq = per_tensor(DType::kI8, 0.01f, 0);
    // Every weight at +-peak and every input at 255: the largest pair sums there are.
    Tensor w = random_quantized({16, 96}, 5, *wq, -peak, peak);
    for (int64_t i = 0; i < w.numel(); ++i) w.data<int8_t>()[i] = static_cast<int8_t>(i % 3 == 0 ? -peak : peak);
    g.outputs({g.node("qlinear", {x, g.constant("w", std::move(w))}, {{"out_dtype", std::string("f32")}}, "fc")});
    Tensor input = random_quantized({2, 3, 96}, 6, *xq, 250, 255);
    RunResult r = run_both(g.graph, {input});
    INFO("weights at +-" << peak << "\n" << r.report.to_string());
    CHECK(compare(r.got[0], r.want[0], kBitExact).worst == 0);
    if (peak <= cpu.int8_weight_limit) {
      CHECK(r.fallbacks.empty());
    } else {
      REQUIRE(r.fallbacks.size() == 1);
      CHECK(r.fallbacks[0].node == "fc");
      CHECK_THAT(r.fallbacks[0].reason, Catch::Contains("no VNNI") && Catch::Contains(cpu.isa) &&
                                            Catch::Contains("'w' reaches 127"));
    }
  }
}

TEST_CASE("qlinear is bit-exact: 2-D and 3-D inputs, per-channel weights, biases, fused f32 post-ops",
          "[onednn][int8]") {
  struct Case {
    ir::Shape x;
    DType act;
    int32_t zx;
    int bias;
    std::string out;
    std::string post;
  };
  const std::vector<Case> cases = {
      {{4, 64}, DType::kU8, 100, 1, "u8", ""},
      {{2, 5, 48}, DType::kI8, 0, 2, "i8", ""},
      {{3, 32}, DType::kU8, 17, 1, "f32", "relu"},
      {{3, 32}, DType::kI8, -3, 0, "f32", "gelu"},
  };
  int index = 0;
  for (const Case& c : cases) {
    GraphBuilder g;
    auto xq = per_tensor(c.act, 0.05f, c.zx);
    Value* x = g.input("x", c.x, c.act, xq);
    const int64_t out = 24, in = c.x.back();
    std::vector<float> scales;
    std::vector<int32_t> zps;
    for (int64_t i = 0; i < out; ++i) {
      scales.push_back(0.002f * static_cast<float>(1 + i % 5));
      zps.push_back(static_cast<int32_t>(i % 5) - 2);
    }
    auto wq = per_channel(DType::kI8, scales, zps);
    std::vector<Value*> ins = {x, g.constant("w", random_int8_weights({out, in}, 20 + index, *wq, 120))};
    if (c.bias == 1) ins.push_back(g.constant("b", random_f32({out}, 30 + index)));
    if (c.bias == 2) {
      std::vector<int32_t> b(static_cast<size_t>(out));
      for (int64_t i = 0; i < out; ++i) b[static_cast<size_t>(i)] = static_cast<int32_t>(i * 37 % 300) - 150;
      ins.push_back(g.constant("b", Tensor::from_vector<int32_t>(DType::kI32, {out}, b)));
    }
    Value* y = g.node("qlinear", ins,
                      {{"out_dtype", c.out}, {"out_scale", 0.07}, {"out_zero_point", int64_t{c.out == "u8" ? 5 : -1}}});
    if (!c.post.empty()) y = g.node(c.post, {y});
    g.outputs({y});
    const int lo = c.act == DType::kU8 ? 0 : -128, hi = c.act == DType::kU8 ? 255 : 127;
    INFO("qlinear case " << index);
    RunResult r = run_both(g.graph, {random_quantized(c.x, 40 + index, *xq, lo, hi)});
    const Comparison cmp = compare(r.got[0], r.want[0], c.post == "gelu" ? Bound{1e-5, 1e-6} : kBitExact);
    INFO(cmp.to_string() << "\n" << r.report.to_string());
    CHECK(cmp.worst <= 1.0);
    CHECK(cmp.mismatched == 0);
    CHECK(r.fallbacks.empty());
    if (!c.post.empty()) CHECK(r.report.fused_nodes == 1);
    ++index;
  }
}

// Note [Requantizing after f32 post-ops] (emit_quantized.cpp): a quantize
// after an int8 layer's f32 output and its eltwise posts is the layer's own
// u8/i8 output. Bit-exact without a transcendental post; with gelu (oneDNN's
// kernel, as for the f32 output) within one quantization step.
TEST_CASE("qlinear -> [eltwise] -> quantize is one int8 primitive writing u8/i8", "[onednn][int8]") {
  struct Case {
    std::string post;  // "" none
    DType out;
    int32_t zo;
    bool fused;  // clamp uses eltwise clip, which the requantization needs for itself
  };
  const std::vector<Case> cases = {
      {"", DType::kU8, 18, true},      {"relu", DType::kU8, 0, true},   {"gelu", DType::kU8, 18, true},
      {"gelu", DType::kI8, -5, true},  {"silu", DType::kI8, 3, true},   {"relu6", DType::kU8, 0, false},
  };
  int index = 0;
  for (const Case& c : cases) {
    GraphBuilder g;
    auto xq = per_tensor(DType::kU8, 0.05f, 100);
    Value* x = g.input("x", {2, 8, 32}, DType::kU8, xq);
    const int64_t out = 48;
    std::vector<float> scales;
    for (int64_t i = 0; i < out; ++i) scales.push_back(0.003f * static_cast<float>(1 + i % 4));
    auto wq = per_channel(DType::kI8, scales, std::vector<int32_t>(static_cast<size_t>(out), 0));
    Value* y = g.node("qlinear",
                      {x, g.constant("w", random_int8_weights({out, 32}, 50 + index, *wq, 120)),
                       g.constant("b", random_f32({out}, 60 + index))},
                      {{"out_dtype", std::string("f32")}, {"out_scale", 1.0}, {"out_zero_point", int64_t{0}}});
    if (!c.post.empty()) y = g.node(c.post, {y});
    y = g.node("quantize", {y},
               {{"dtype", std::string(ir::dtype_name(c.out))},
                {"scale", std::vector<double>{0.021}},
                {"zero_point", std::vector<int64_t>{c.zo}}});
    g.outputs({y});
    INFO("case " << index << ": " << (c.post.empty() ? "none" : c.post) << " -> " << ir::dtype_name(c.out));
    RunResult r = run_both(g.graph, {random_quantized({2, 8, 32}, 70 + index, *xq, 0, 255)});
    const bool transcendental = c.post == "gelu" || c.post == "silu";
    const Comparison cmp = compare(r.got[0], r.want[0], transcendental ? Bound{1.0, 0.0} : kBitExact);
    INFO(cmp.to_string() << "\n" << r.report.to_string());
    CHECK(cmp.worst <= 1.0);
    if (!transcendental) CHECK(cmp.mismatched == 0);
    CHECK(r.fallbacks.empty());
    CHECK(r.report.steps.size() == (c.fused ? 1u : 2u));
    CHECK(r.report.fused_nodes == (c.fused ? (c.post.empty() ? 1 : 2) : 1));
    ++index;
  }
}

TEST_CASE("qconv2d and qmatmul -> [eltwise] -> quantize are one int8 primitive too", "[onednn][int8]") {
  auto requantize = [](GraphBuilder& g, Value* y, const char* dtype, int64_t zp) {
    return g.node("quantize", {y},
                  {{"dtype", std::string(dtype)}, {"scale", std::vector<double>{0.03}},
                   {"zero_point", std::vector<int64_t>{zp}}});
  };
  const ir::AttributeMap f32_out = {{"out_dtype", std::string("f32")}, {"out_scale", 1.0}, {"out_zero_point", int64_t{0}}};
  // Steps other than layout reorders at the plan's boundaries.
  auto compute_steps = [](const runtime::OnednnPlanReport& report) {
    return std::count_if(report.steps.begin(), report.steps.end(),
                         [](const runtime::OnednnStep& st) { return st.kind != "reorder"; });
  };
  for (const std::string post : {"", "relu", "hardswish"}) {
    INFO("qconv2d, post '" << post << "'");
    GraphBuilder g;
    auto xq = per_tensor(DType::kU8, 0.02f, 128);
    Value* x = g.input("x", {1, 8, 9, 9}, DType::kU8, xq);
    std::vector<float> scales;
    for (int c = 0; c < 16; ++c) scales.push_back(0.004f + 0.0005f * static_cast<float>(c % 5));
    auto wq = per_channel(DType::kI8, scales, std::vector<int32_t>(16, 0));
    ir::AttributeMap attrs = f32_out;
    attrs["padding"] = std::vector<int64_t>{1, 1, 1, 1};
    Value* y = g.node("qconv2d",
                      {x, g.constant("w", random_int8_weights({16, 8, 3, 3}, 80, *wq, 100)),
                       g.constant("b", random_f32({16}, 81))},
                      attrs);
    if (!post.empty()) y = g.node(post, {y});
    g.outputs({requantize(g, y, "u8", 7)});
    RunResult r = run_both(g.graph, {random_quantized({1, 8, 9, 9}, 82, *xq, 0, 255)});
    const Comparison cmp = compare(r.got[0], r.want[0], post == "hardswish" ? Bound{1.0, 0.0} : kBitExact);
    INFO(cmp.to_string() << "\n" << r.report.to_string());
    CHECK(cmp.worst <= 1.0);
    if (post != "hardswish") CHECK(cmp.mismatched == 0);
    CHECK(r.fallbacks.empty());
    CHECK(compute_steps(r.report) == 1);
  }
  {
    INFO("qmatmul");
    GraphBuilder g;
    auto aq = per_tensor(DType::kU8, 0.03f, 7);
    auto bq = s8_operand(0.02f, 3);
    Value* a = g.input("a", {2, 3, 5, 16}, DType::kU8, aq);
    Value* b = g.input("b", {2, 3, 16, 4}, DType::kI8, bq);
    g.outputs({requantize(g, g.node("qmatmul", {a, b}, f32_out), "i8", -4)});
    RunResult r = run_both(
        g.graph, {random_quantized({2, 3, 5, 16}, 83, *aq, 0, 255), random_quantized({2, 3, 16, 4}, 84, *bq, -s8_operand_peak(120), s8_operand_peak(120))});
    const Comparison cmp = compare(r.got[0], r.want[0], kBitExact);
    INFO(cmp.to_string() << "\n" << r.report.to_string());
    CHECK(cmp.mismatched == 0);
    CHECK(r.fallbacks.empty());
    CHECK(compute_steps(r.report) == 1);
  }
}

TEST_CASE("qmatmul is bit-exact with zero points on both operands - a u8 second operand falls back", "[onednn][int8]") {
  {
    GraphBuilder g;
    auto aq = per_tensor(DType::kU8, 0.03f, 7);
    auto bq = s8_operand(0.02f, 3);
    Value* a = g.input("a", {2, 3, 5, 16}, DType::kU8, aq);
    Value* b = g.input("b", {2, 3, 16, 4}, DType::kI8, bq);
    g.outputs({g.node("qmatmul", {a, b},
                      {{"out_dtype", std::string("u8")}, {"out_scale", 0.1}, {"out_zero_point", int64_t{9}}})});
    check_against_reference(
        g.graph, {random_quantized({2, 3, 5, 16}, 1, *aq, 0, 255), random_quantized({2, 3, 16, 4}, 2, *bq, -s8_operand_peak(120), s8_operand_peak(120))},
        f32_options(), kBitExact);
  }
  {
    GraphBuilder g;
    auto aq = per_tensor(DType::kI8, 0.03f, 0);
    auto bq = per_tensor(DType::kU8, 0.02f, 128);
    Value* a = g.input("a", {4, 8}, DType::kI8, aq);
    Value* b = g.input("b", {8, 6}, DType::kU8, bq);
    g.outputs({g.node("qmatmul", {a, b}, {}, "uq")});
    RunResult r =
        run_both(g.graph, {random_quantized({4, 8}, 3, *aq, -128, 127), random_quantized({8, 6}, 4, *bq, 0, 255)});
    CHECK(compare(r.got[0], r.want[0], kBitExact).worst == 0);
    REQUIRE(r.fallbacks.size() == 1);
    CHECK_THAT(r.fallbacks[0].reason, Catch::Contains("u8 second operand"));
  }
}

TEST_CASE("quantize and dequantize follow the contract bit for bit (ties, saturation, per axis)", "[onednn][int8]") {
  Tensor x = random_f32({2, 8, 5, 5}, 9, -4, 4);
  // Exact ties x * (1/scale) = k + 0.5 with scale 0.25, and saturating values.
  for (int64_t i = 0; i < 40; ++i) x.data<float>()[i] = 0.125f * static_cast<float>(i - 20);
  x.data<float>()[41] = 1e9f;
  x.data<float>()[42] = -1e9f;
  for (const char* dtype : {"u8", "i8"}) {
    GraphBuilder g;
    Value* in = g.input("x", {2, 8, 5, 5});
    Value* q = g.node("quantize", {in},
                      {{"dtype", std::string(dtype)},
                       {"scale", std::vector<double>{0.25}},
                       {"zero_point", std::vector<int64_t>{std::string(dtype) == "u8" ? 129 : -3}}});
    std::vector<double> scales;
    for (int c = 0; c < 8; ++c) scales.push_back(0.01 + 0.02 * c);
    Value* qa = g.node("quantize", {in},
                       {{"dtype", std::string(dtype)},
                        {"scale", scales},
                        {"axis", int64_t{1}},
                        {"zero_point", std::vector<int64_t>(8, std::string(dtype) == "u8" ? 100 : 1)}});
    g.outputs({q, g.node("dequantize", {q}), qa, g.node("dequantize", {qa})});
    INFO(dtype);
    check_against_reference(g.graph, {x}, f32_options(), kBitExact);
  }
}

TEST_CASE("quantize on large tensors (the vectorized, threaded path): ties, NaN, Inf, narrow ranges",
          "[onednn][int8]") {
  const ir::Shape shape{4, 64, 32, 32};  // 2^18 elements: split across threads
  Tensor x = random_f32(shape, 11, -40, 40);
  float* p = x.data<float>();
  for (int64_t i = 0; i < x.numel(); i += 7) p[i] = 0.05f * static_cast<float>(i % 4001 - 2000);  // k * scale / 2: ties
  p[3] = std::numeric_limits<float>::quiet_NaN();
  p[5] = std::numeric_limits<float>::infinity();
  p[9] = -std::numeric_limits<float>::infinity();
  p[13] = 3e38f;
  p[15] = -1e30f;
  p[17] = 8388607.0f;  // beyond the exact-rounding range of the float trick, saturates
  for (const char* dtype : {"u8", "i8"}) {
    for (int narrow = 0; narrow < 2; ++narrow) {
      GraphBuilder g;
      Value* in = g.input("x", shape);
      ir::AttributeMap attrs = {{"dtype", std::string(dtype)},
                                {"scale", std::vector<double>{0.1}},
                                {"zero_point", std::vector<int64_t>{std::string(dtype) == "u8" ? 131 : -7}}};
      if (narrow) {
        attrs["qmin"] = int64_t{std::string(dtype) == "u8" ? 20 : -100};
        attrs["qmax"] = int64_t{std::string(dtype) == "u8" ? 200 : 90};
      }
      Value* q = g.node("quantize", {in}, attrs);
      g.outputs({q, g.node("dequantize", {q})});
      INFO(dtype << " narrow " << narrow);
      check_against_reference(g.graph, {x}, f32_options(), kBitExact);
    }
  }
}

TEST_CASE("an int8 chain (quantize, qconv2d u8 -> qconv2d u8 -> dequantize) stays in int8 and is bit-exact",
          "[onednn][int8]") {
  GraphBuilder g;
  Value* x = g.input("x", {1, 8, 12, 12});
  Value* q = g.node(
      "quantize", {x},
      {{"dtype", std::string("u8")}, {"scale", std::vector<double>{0.02}}, {"zero_point", std::vector<int64_t>{128}}});
  auto w1q = per_channel(DType::kI8, std::vector<float>(16, 0.003f), std::vector<int32_t>(16, 0));
  auto w2q = per_channel(DType::kI8, std::vector<float>(16, 0.004f), std::vector<int32_t>(16, 0));
  Value* c1 = g.node(
      "qconv2d",
      {q, g.constant("w1", random_int8_weights({16, 8, 3, 3}, 1, *w1q, 127)), g.constant("b1", random_f32({16}, 2))},
      {{"padding", std::vector<int64_t>{1, 1, 1, 1}},
       {"out_dtype", std::string("u8")},
       {"out_scale", 0.03},
       {"out_zero_point", int64_t{0}}});
  Value* c2 = g.node("qconv2d", {c1, g.constant("w2", random_int8_weights({16, 16, 1, 1}, 3, *w2q, 127))},
                     {{"out_dtype", std::string("u8")}, {"out_scale", 0.05}, {"out_zero_point", int64_t{60}}});
  g.outputs({g.node("dequantize", {c2})});
  RunResult r = run_both(g.graph, {random_f32({1, 8, 12, 12}, 4, -2, 2)});
  const Comparison c = compare(r.got[0], r.want[0], kBitExact);
  INFO(c.to_string() << "\n" << r.report.to_string());
  CHECK(c.worst == 0);
  CHECK(r.fallbacks.empty());
  // The two convolutions hand u8 data to each other without a trip through f32.
  int convs = 0;
  for (const auto& step : r.report.steps) convs += step.kind == "convolution";
  CHECK(convs == 2);
}

}  // namespace compress::test

namespace compress::test {

TEST_CASE("a PTQ-style graph (dequantize -> f32 add + relu -> quantize between int8 convs) stays in one layout",
          "[onednn][int8]") {
  GraphBuilder g;
  Value* x = g.input("x", {2, 16, 10, 10});
  auto quantize = [&](Value* v, double scale, int64_t zp) {
    return g.node("quantize", {v},
                  {{"dtype", std::string("u8")},
                   {"scale", std::vector<double>{scale}},
                   {"zero_point", std::vector<int64_t>{zp}}});
  };
  auto wq = per_channel(DType::kI8, std::vector<float>(16, 0.004f), std::vector<int32_t>(16, 0));
  auto qconv = [&](Value* v, uint32_t seed, double out_scale, int64_t out_zp) {
    return g.node("qconv2d",
                  {v, g.constant("w" + std::to_string(seed), random_int8_weights({16, 16, 3, 3}, seed, *wq, 127)),
                   g.constant("b" + std::to_string(seed), random_f32({16}, seed + 1))},
                  {{"padding", std::vector<int64_t>{1, 1, 1, 1}},
                   {"out_dtype", std::string("u8")},
                   {"out_scale", out_scale},
                   {"out_zero_point", out_zp}});
  };
  Value* q0 = quantize(x, 0.02, 128);
  Value* c1 = qconv(q0, 1, 0.05, 7);
  Value* sum = g.node("add", {g.node("dequantize", {c1}), x});
  Value* q1 = quantize(g.node("relu", {sum}), 0.03, 0);
  Value* c2 = qconv(q1, 2, 0.04, 3);
  g.outputs({g.node("dequantize", {c2})});
  RunResult r = run_both(g.graph, {random_f32({2, 16, 10, 10}, 3, -2, 2)});
  const Comparison c = compare(r.got[0], r.want[0], Bound{0, 0});
  INFO(c.to_string() << "\n" << r.report.to_string());
  // Bit for bit: the f32 add and relu between the int8 convs are exact IEEE ops.
  CHECK(c.worst == 0);
  CHECK(r.fallbacks.empty());
  // The graph input is reordered once for the add and once for the first quantize at most; the output once.
  CHECK(r.report.reorders <= 3);
}

}  // namespace compress::test

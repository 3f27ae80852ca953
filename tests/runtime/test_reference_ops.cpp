// Every op of op set v1 on the reference backend against PyTorch-computed fixtures.
#include <catch2/catch.hpp>
#include <set>

#include "compress/ir/op_schema.h"
#include "op_fixtures.h"

namespace compress::test {
namespace {

// Note [Reference error bounds]
// The reference keeps f32 tensors but accumulates every sum, dot product and
// statistic in double and rounds once, so it is held against PyTorch run in
// float64 on the same f32 inputs (then rounded to f32) with near-ulp bounds,
// and against PyTorch float32 with the bounds a float32 user sees.
// Bound: |got - want| <= atol + rtol * |want|.
//
//  class           ops                                                     vs float64          vs float32
//  exact           add/sub/mul/div, relu, relu6, clamp, max pools,         0                    0
//                  concat/split/slice/reshape/flatten/transpose/permute,
//                  embedding; and all quantized ops vs the integer
//                  contract (bit for bit, f32 outputs included), torch's
//                  quantize_per_*/fake_quantize_per_*/dequantize
//  gemm            conv2d, linear, matmul                                  rtol 1e-6, atol 1e-7 rtol 1e-5, atol 1e-5
//  norm            batch_norm, layer_norm, reduce_mean, avg/adaptive pools rtol 1e-6, atol 1e-7 rtol 1e-5, atol 1e-6
//  transcendental  sigmoid, silu, tanh, hardswish, hardsigmoid, gelu       rtol 1e-6, atol 1e-7 rtol 1e-5, atol 1e-6
//                  (erf and tanh), softmax, attention
//  graph           whole conv and transformer graphs                       rtol 1e-5, atol 1e-6 rtol 1e-4, atol 1e-5
//  step1           qconv2d/qlinear u8 outputs vs torch.ops.quantized       within 1 quantization step
const std::map<std::string, ErrorBound>& bounds() {
  static const std::map<std::string, ErrorBound> table = {
      {"exact", {0.0, 0.0}},
      {"exact_vs_f32", {0.0, 0.0}},
      {"gemm", {1e-6, 1e-7}},
      {"gemm_vs_f32", {1e-5, 1e-5}},
      {"norm", {1e-6, 1e-7}},
      {"norm_vs_f32", {1e-5, 1e-6}},
      {"transcendental", {1e-6, 1e-7}},
      {"transcendental_vs_f32", {1e-5, 1e-6}},
      {"graph", {1e-5, 1e-6}},
      {"graph_vs_f32", {1e-4, 1e-5}},
      {"step1", {0.0, 1.0}},
  };
  return table;
}

int run_family(const std::string& family) {
  const std::vector<OpFixture> cases = load_op_fixtures(family);
  for (const OpFixture& c : cases) check_fixture(c, bounds());
  return static_cast<int>(cases.size());
}

}  // namespace

TEST_CASE("conv2d: plain, strided, padded (asymmetric), dilated, grouped, depthwise", "[runtime][ops]") {
  CHECK(run_family("conv2d") >= 8);
}

TEST_CASE("linear and matmul with batch broadcasting and 1-D operands", "[runtime][ops]") {
  CHECK(run_family("linear") >= 2);
  CHECK(run_family("matmul") >= 7);
}

TEST_CASE("batch_norm, layer_norm, rms_norm, softmax, reduce_mean", "[runtime][ops]") {
  CHECK(run_family("batch_norm") >= 2);
  CHECK(run_family("layer_norm") >= 3);
  CHECK(run_family("rms_norm") >= 3);
  CHECK(run_family("softmax") >= 2);
  CHECK(run_family("reduce_mean") >= 3);
}

TEST_CASE("activations, gelu (erf and tanh), clamp", "[runtime][ops]") {
  for (const char* op : {"relu", "relu6", "silu", "sigmoid", "tanh", "hardswish", "hardsigmoid"}) {
    INFO(op);
    CHECK(run_family(op) == 1);
  }
  CHECK(run_family("gelu") == 2);
  CHECK(run_family("clamp") == 2);
}

TEST_CASE("binary ops with broadcasting", "[runtime][ops]") { CHECK(run_family("binary") >= 6); }

TEST_CASE("shape ops: concat, split, slice, reshape, flatten, transpose, permute", "[runtime][ops]") {
  CHECK(run_family("shape") >= 12);
}

TEST_CASE("pooling: max/avg with ceil_mode and padding, adaptive with uneven bins", "[runtime][ops]") {
  CHECK(run_family("pool") >= 15);
}

TEST_CASE("embedding and scaled dot-product attention (causal, bool and float masks)", "[runtime][ops]") {
  CHECK(run_family("embedding") == 2);
  CHECK(run_family("attention") >= 5);
}

TEST_CASE("quantize, dequantize, fake_quant: per tensor, per channel, per group, int4", "[runtime][ops][quant]") {
  CHECK(run_family("quantize") >= 6);
  CHECK(run_family("dequantize") >= 8);
  CHECK(run_family("fake_quant") >= 7);
}

TEST_CASE("qlinear, qconv2d, qmatmul, qadd: exact integer contract and PyTorch within one step", "[runtime][ops][quant]") {
  CHECK(run_family("qlinear") >= 4);
  CHECK(run_family("qconv2d") >= 4);
  CHECK(run_family("qmatmul") >= 2);
  CHECK(run_family("qadd") >= 3);
}

TEST_CASE("whole graphs with a batch other than the declared one", "[runtime][ops][graph]") {
  CHECK(run_family("graph") >= 2);
}

TEST_CASE("every op of op set v1 has at least one fixture", "[runtime][ops]") {
  std::set<std::string> covered;
  for (const OpFixture& c : load_op_fixtures()) {
    for (const auto& n : c.spec.at("nodes")) covered.insert(n.at("op").get<std::string>());
  }
  for (const ir::OpSchema& schema : ir::op_table()) {
    INFO("op " << schema.name);
    CHECK(covered.count(std::string(schema.name)) == 1);
  }
}

}  // namespace compress::test

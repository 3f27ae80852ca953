// Helpers of the onednn backend tests: graph building, random data, running against the reference.
#pragma once

#include <catch2/catch.hpp>
#include <random>
#include <string>
#include <vector>

#include "compress/ir/graph.h"
#include "compress/runtime/onednn.h"

namespace compress::test {

// Builds small graphs tersely; every failure is a test failure.
class GraphBuilder {
 public:
  ir::Value* input(const std::string& name, ir::Shape shape, ir::DType dtype = ir::DType::kF32,
                   std::shared_ptr<const ir::QuantParams> quant = nullptr);
  ir::Value* constant(const std::string& name, ir::Tensor t);
  ir::Value* node(const std::string& op, std::vector<ir::Value*> inputs, ir::AttributeMap attrs = {},
                  const std::string& name = "");
  std::vector<ir::Value*> node_outputs(const std::string& op, std::vector<ir::Value*> inputs,
                                       ir::AttributeMap attrs = {}, const std::string& name = "");
  void outputs(std::vector<ir::Value*> values) { graph.set_outputs(std::move(values)); }

  ir::Graph graph;

 private:
  int counter_ = 0;
};

// Uniform f32 in [lo, hi); with `bf16_exact`, every value is representable in bf16.
ir::Tensor random_f32(ir::Shape shape, uint32_t seed, float lo = -1.0f, float hi = 1.0f, bool bf16_exact = false);
// Random integer codes in [lo, hi] of an i8/u8 tensor carrying `params`.
ir::Tensor random_quantized(ir::Shape shape, uint32_t seed, const ir::QuantParams& params, int lo, int hi);
std::shared_ptr<const ir::QuantParams> per_tensor(ir::DType dtype, float scale, int32_t zero_point);
std::shared_ptr<const ir::QuantParams> per_channel(ir::DType dtype, std::vector<float> scales,
                                                   std::vector<int32_t> zero_points);
// Note [int8 and bf16 by CPU ISA] (compress/runtime/onednn.h): random s8
// weights for a test that wants oneDNN's int8 kernels, codes in [-p, p] with
// p = min(peak, the largest value this CPU's kernels sum exactly), so the
// native path is what the test exercises on every CPU.
ir::Tensor random_int8_weights(ir::Shape shape, uint32_t seed, const ir::QuantParams& params, int peak = 127);
// Per-tensor s8 params of a qmatmul's second (activation) operand, with the
// range narrowed to what this CPU's int8 kernels sum exactly (full s8 with VNNI).
std::shared_ptr<const ir::QuantParams> s8_operand(float scale, int32_t zero_point);
// The largest |code| such an operand takes here: min(wanted, that range).
int s8_operand_peak(int wanted);
// Whether oneDNN's int8 convolutions run a `source`-typed (u8/i8) input
// natively here: always with VNNI, only u8 without it.
bool int8_conv_native(ir::DType source);
// The PTQ weight bits whose codes this CPU's int8 kernels sum exactly: 8
// with VNNI, else 7 (quant.ptq weight_bits), for tests of the int8 plan's shape.
int native_int8_weight_bits();
// True (after one WARN naming the ISA) when this CPU has no oneDNN bf16
// kernels: the caller skips its bf16 case.
bool skip_bf16();
ir::Tensor identity_conv_weight(int64_t channels);  // [C, C, 1, 1]
ir::Tensor identity_matrix(int64_t n);              // [n, n]

// Note [onednn error bounds]
// Bound: |got - want| <= rtol * |want| + atol * max|want| for every element,
// where want is the reference backend. The atol term is relative to the
// output's range so that sums with cancellation are judged by their size.
// NaN must be NaN in both.
struct Bound {
  double rtol = 0;
  double atol = 0;
};

struct Comparison {
  double max_abs = 0;  // max |got - want|
  double max_ref = 0;  // max |want|
  double worst = 0;    // max of |got - want| / (rtol |want| + atol max|want|) (<= 1 passes)
  int64_t nan_mismatches = 0;
  int64_t elements = 0;
  int64_t mismatched = 0;  // integer outputs: elements that differ
  int64_t max_steps = 0;   // integer outputs: largest difference in quantization steps
  bool shapes_match = true;
  std::string to_string() const;
};

Comparison compare(const ir::Tensor& got, const ir::Tensor& want, Bound bound);

struct RunResult {
  std::vector<ir::Tensor> got, want;
  runtime::OnednnPlanReport report;
  std::vector<runtime::OnednnFallback> fallbacks;
};

// Compiles with the onednn backend, runs once, and runs the reference on
// the same inputs. Fails the test when either run fails.
RunResult run_both(const ir::Graph& graph, const std::vector<ir::Tensor>& inputs,
                   const runtime::OnednnOptions& options = {});

// run_both, then every output checked against the bound (integer outputs: exact
// when bound.atol is 0, else within bound.atol steps). Returns the worst comparison.
Comparison check_against_reference(const ir::Graph& graph, const std::vector<ir::Tensor>& inputs,
                                   const runtime::OnednnOptions& options, Bound bound, bool expect_no_fallback = true);

runtime::OnednnOptions f32_options(bool fuse = true);
runtime::OnednnOptions bf16_options(bool fuse = true);

}  // namespace compress::test

// onednn test helpers (see onednn_test_util.h).
#include "onednn_test_util.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <set>

#include "compress/runtime/reference.h"

namespace compress::test {

using ir::DType;
using ir::Tensor;

ir::Value* GraphBuilder::input(const std::string& name, ir::Shape shape, DType dtype,
                               std::shared_ptr<const ir::QuantParams> quant) {
  auto v = graph.add_input(name, ir::ValueType{dtype, std::move(shape), std::move(quant)});
  INFO(v.status().to_string());
  REQUIRE(v.has_value());
  return *v;
}

ir::Value* GraphBuilder::constant(const std::string& name, Tensor t) {
  auto v = graph.add_constant(name, std::move(t));
  INFO(v.status().to_string());
  REQUIRE(v.has_value());
  return *v;
}

ir::Value* GraphBuilder::node(const std::string& op, std::vector<ir::Value*> inputs, ir::AttributeMap attrs,
                              const std::string& name) {
  return node_outputs(op, std::move(inputs), std::move(attrs), name).front();
}

std::vector<ir::Value*> GraphBuilder::node_outputs(const std::string& op, std::vector<ir::Value*> inputs,
                                                   ir::AttributeMap attrs, const std::string& name) {
  auto n = graph.add_node(op, inputs, std::move(attrs), name.empty() ? fmt::format("{}_{}", op, counter_++) : name);
  INFO(n.status().to_string());
  REQUIRE(n.has_value());
  return (*n)->outputs();
}

Tensor random_f32(ir::Shape shape, uint32_t seed, float lo, float hi, bool bf16_exact) {
  Tensor t = Tensor::zeros(DType::kF32, std::move(shape)).value();
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  for (int64_t i = 0; i < t.numel(); ++i) {
    float v = dist(gen);
    if (bf16_exact) v = ir::bf16_to_float(ir::float_to_bf16(v));
    t.data<float>()[i] = v;
  }
  return t;
}

Tensor random_quantized(ir::Shape shape, uint32_t seed, const ir::QuantParams& params, int lo, int hi) {
  Tensor t = Tensor::zeros(params.storage(), std::move(shape)).value();
  std::mt19937 gen(seed);
  std::uniform_int_distribution<int> dist(lo, hi);
  for (int64_t i = 0; i < t.numel(); ++i) {
    const int v = dist(gen);
    if (params.storage() == DType::kI8) {
      t.data<int8_t>()[i] = static_cast<int8_t>(v);
    } else {
      t.data<uint8_t>()[i] = static_cast<uint8_t>(v);
    }
  }
  return t.with_quant(std::make_shared<const ir::QuantParams>(params));
}

Tensor random_int8_weights(ir::Shape shape, uint32_t seed, const ir::QuantParams& params, int peak) {
  // The limit is on the centered codes (code - zero point).
  int zp_lo = 0, zp_hi = 0;
  for (int32_t zp : params.zero_points()) {
    zp_lo = std::min(zp_lo, static_cast<int>(zp));
    zp_hi = std::max(zp_hi, static_cast<int>(zp));
  }
  const int limit = runtime::onednn_cpu_support().int8_weight_limit;
  const int lo = std::max(-peak, limit < 127 ? zp_hi - limit : -128);
  const int hi = std::min(peak, limit < 127 ? zp_lo + limit : 127);
  return random_quantized(std::move(shape), seed, params, lo, hi);
}

std::shared_ptr<const ir::QuantParams> s8_operand(float scale, int32_t zero_point) {
  const int limit = runtime::onednn_cpu_support().int8_weight_limit;
  if (limit >= 127) return per_tensor(DType::kI8, scale, zero_point);
  ir::QuantParams::Spec spec;
  spec.scales = {scale};
  spec.zero_points = {zero_point};
  spec.qmin = -limit;
  spec.qmax = limit;
  auto q = ir::QuantParams::create(std::move(spec));
  REQUIRE(q.has_value());
  return std::make_shared<const ir::QuantParams>(std::move(*q));
}

int s8_operand_peak(int wanted) { return std::min(wanted, runtime::onednn_cpu_support().int8_weight_limit); }

bool int8_conv_native(DType source) { return runtime::onednn_cpu_support().int8_vnni || source == DType::kU8; }

int native_int8_weight_bits() { return runtime::onednn_cpu_support().int8_vnni ? 8 : 7; }

bool skip_bf16() {
  const runtime::OnednnCpuSupport& cpu = runtime::onednn_cpu_support();
  if (cpu.bf16) return false;
  static std::set<std::string> warned;  // once per test case
  if (warned.insert(Catch::getResultCapture().getCurrentTestName()).second) {
    WARN("bf16 cases skipped: this CPU's oneDNN ISA (" << cpu.isa << ") has no bf16 kernels");
  }
  return true;
}

std::shared_ptr<const ir::QuantParams> per_tensor(DType dtype, float scale, int32_t zero_point) {
  return std::make_shared<const ir::QuantParams>(ir::QuantParams::per_tensor(dtype, scale, zero_point).value());
}

std::shared_ptr<const ir::QuantParams> per_channel(DType dtype, std::vector<float> scales,
                                                   std::vector<int32_t> zero_points) {
  return std::make_shared<const ir::QuantParams>(
      ir::QuantParams::per_axis(dtype, 0, std::move(scales), std::move(zero_points)).value());
}

Tensor identity_conv_weight(int64_t channels) {
  Tensor t = Tensor::zeros(DType::kF32, {channels, channels, 1, 1}).value();
  for (int64_t c = 0; c < channels; ++c) t.data<float>()[c * channels + c] = 1.0f;
  return t;
}

Tensor identity_matrix(int64_t n) {
  Tensor t = Tensor::zeros(DType::kF32, {n, n}).value();
  for (int64_t c = 0; c < n; ++c) t.data<float>()[c * n + c] = 1.0f;
  return t;
}

std::string Comparison::to_string() const {
  return fmt::format(
      "max |got-want| {:.3g}, max |want| {:.3g}, worst/bound {:.3g}, NaN mismatches {}, elements {}, integer "
      "mismatches {} (max {} steps){}",
      max_abs, max_ref, worst, nan_mismatches, elements, mismatched, max_steps, shapes_match ? "" : ", SHAPES DIFFER");
}

Comparison compare(const Tensor& got, const Tensor& want, Bound bound) {
  Comparison c;
  c.elements = want.numel();
  if (got.shape() != want.shape() || got.dtype() != want.dtype()) {
    c.shapes_match = false;
    c.worst = INFINITY;
    return c;
  }
  const bool integer = !ir::is_float(want.dtype());
  for (int64_t i = 0; i < want.numel(); ++i) {
    const double w = want.element_as_double(i);
    if (std::isfinite(w)) c.max_ref = std::max(c.max_ref, std::fabs(w));
  }
  for (int64_t i = 0; i < want.numel(); ++i) {
    const double g = got.element_as_double(i), w = want.element_as_double(i);
    if (std::isnan(g) != std::isnan(w)) {
      ++c.nan_mismatches;
      continue;
    }
    if (std::isnan(w) || (std::isinf(w) && g == w)) continue;
    const double diff = std::fabs(g - w);
    c.max_abs = std::max(c.max_abs, diff);
    if (integer) {
      if (diff != 0) ++c.mismatched;
      c.max_steps = std::max(c.max_steps, static_cast<int64_t>(diff));
      c.worst = std::max(c.worst, diff == 0 ? 0.0 : (bound.atol == 0 ? INFINITY : diff / bound.atol));
      continue;
    }
    const double allowed = bound.rtol * std::fabs(w) + bound.atol * c.max_ref;
    c.worst = std::max(c.worst, diff == 0 ? 0.0 : (allowed == 0 ? INFINITY : diff / allowed));
  }
  if (c.nan_mismatches) c.worst = INFINITY;
  return c;
}

RunResult run_both(const ir::Graph& graph, const std::vector<Tensor>& inputs, const runtime::OnednnOptions& options) {
  RunResult r;
  auto backend = runtime::make_onednn_backend(options);
  auto plan = backend->compile(graph);
  INFO("onednn compile: " << plan.status().to_string());
  REQUIRE(plan.has_value());
  auto got = (*plan)->run(inputs);
  INFO("onednn run: " << got.status().to_string());
  REQUIRE(got.has_value());
  r.got = std::move(*got);
  const runtime::OnednnPlan* p = runtime::as_onednn_plan(**plan);
  REQUIRE(p != nullptr);
  r.report = p->report();
  r.fallbacks = p->fallbacks();
  auto want = runtime::run_reference(graph, inputs);
  INFO("reference: " << want.status().to_string());
  REQUIRE(want.has_value());
  r.want = std::move(*want);
  REQUIRE(r.got.size() == r.want.size());
  return r;
}

Comparison check_against_reference(const ir::Graph& graph, const std::vector<Tensor>& inputs,
                                   const runtime::OnednnOptions& options, Bound bound, bool expect_no_fallback) {
  if (options.compute == runtime::OnednnCompute::kBF16 && skip_bf16()) return {};
  RunResult r = run_both(graph, inputs, options);
  Comparison worst;
  for (size_t i = 0; i < r.got.size(); ++i) {
    const Comparison c = compare(r.got[i], r.want[i], bound);
    INFO("output " << i << ": " << c.to_string() << "\n" << r.report.to_string());
    CHECK(c.shapes_match);
    CHECK(c.nan_mismatches == 0);
    CHECK(c.worst <= 1.0);
    if (c.worst >= worst.worst) worst = c;
    // COMPRESS_ONEDNN_TEST_VERBOSE=1 prints every comparison (to see how much room a bound leaves).
    if (std::getenv("COMPRESS_ONEDNN_TEST_VERBOSE") != nullptr) {
      fmt::print("[{}] bound rtol {} atol {}: {}\n", Catch::getResultCapture().getCurrentTestName(), bound.rtol,
                 bound.atol, c.to_string());
    }
  }
  if (expect_no_fallback) {
    INFO(r.report.to_string());
    CHECK(r.fallbacks.empty());
  }
  return worst;
}

runtime::OnednnOptions f32_options(bool fuse) {
  runtime::OnednnOptions o;
  o.fuse = fuse;
  return o;
}

runtime::OnednnOptions bf16_options(bool fuse) {
  runtime::OnednnOptions o = f32_options(fuse);
  o.compute = runtime::OnednnCompute::kBF16;
  return o;
}

}  // namespace compress::test

// Helpers for the quant tests: small graphs, random inputs, running a graph on a backend.
#pragma once

#include <random>
#include <string>
#include <vector>

#include "compress/ir/graph.h"
#include "compress/runtime/backend.h"

namespace compress::quant_test {

inline ir::Tensor random_tensor(ir::Shape shape, uint64_t seed, float lo = -1.0f, float hi = 1.0f) {
  ir::Tensor t = ir::Tensor::zeros(ir::DType::kF32, std::move(shape)).value();
  std::mt19937 rng(static_cast<uint32_t>(seed));
  std::uniform_real_distribution<float> dist(lo, hi);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = dist(rng);
  return t;
}

inline std::vector<ir::Tensor> run_graph(const ir::Graph& g, const std::string& backend, const ir::Tensor& x) {
  auto b = runtime::make_backend(backend).value();
  auto plan = b->compile(g).value();
  return plan->run({x}).value();
}

inline float max_abs_diff(const ir::Tensor& a, const ir::Tensor& b) {
  float m = 0.0f;
  for (int64_t i = 0; i < a.numel(); ++i) m = std::max(m, std::abs(a.data<float>()[i] - b.data<float>()[i]));
  return m;
}

inline int64_t count_ops(const ir::Graph& g, const std::string& op) {
  int64_t n = 0;
  for (const auto& node : g.node_list()) n += node->op() == op ? 1 : 0;
  return n;
}

}  // namespace compress::quant_test

// ---- preparation-pass helpers (CLE, bias correction, SmoothQuant) ----
#include "compress/eval/dataset.h"
#include "compress/quant/ptq_pass.h"

namespace compress::quant_test {

// `g` quantized by quant.ptq (int8, `options`) calibrated on `calib`; throws on error.
inline ir::Graph ptq(const ir::Graph& g, const eval::DataSource& calib, quant::PtqPass::Options options = {}) {
  ir::Graph q = g.clone();
  pass::PassContext ctx;
  ctx.calibration = &calib;
  ctx.progress = false;
  throw_if_error(quant::PtqPass(options).run(q, ctx).status());
  return q;
}

// Mean |a - b| and mean (a - b) over all elements.
inline double mean_abs_diff(const ir::Tensor& a, const ir::Tensor& b) {
  double s = 0.0;
  for (int64_t i = 0; i < a.numel(); ++i) s += std::abs(double(a.data<float>()[i]) - b.data<float>()[i]);
  return s / static_cast<double>(a.numel());
}

// Relative max difference max|a - b| / max|b|.
inline double rel_max_diff(const ir::Tensor& a, const ir::Tensor& b) {
  double m = 0.0, ref = 0.0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    m = std::max(m, std::abs(double(a.data<float>()[i]) - b.data<float>()[i]));
    ref = std::max(ref, std::abs(double(b.data<float>()[i])));
  }
  return m / std::max(ref, 1e-30);
}

}  // namespace compress::quant_test

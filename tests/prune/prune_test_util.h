// Helpers shared by the prune tests: the fixture, running graphs, weights as vectors.
#pragma once

#include <cmath>
#include <string>
#include <vector>

#include "compress/eval/dataset.h"
#include "compress/io/cmf.h"
#include "compress/ir/graph.h"
#include "compress/pass/options.h"
#include "compress/pass/registry.h"
#include "compress/prune/prune_passes.h"
#include "compress/runtime/backend.h"
#include "fashion_data.h"

namespace compress::prune_test {

inline std::vector<float> dense_values(const ir::Tensor& t) {
  ir::Tensor d = t.to_dense().value();
  return std::vector<float>(d.data<float>(), d.data<float>() + d.numel());
}

inline std::vector<float> weight_of(const ir::Graph& g, const std::string& node) {
  return dense_values(g.find_node(node)->input(1)->constant());
}

inline int64_t zeros(const std::vector<float>& v) {
  int64_t z = 0;
  for (float x : v) z += x == 0.0f ? 1 : 0;
  return z;
}

inline std::vector<ir::Tensor> run_graph(const ir::Graph& g, const std::string& backend, const ir::Tensor& x) {
  auto b = runtime::make_backend(backend).value();
  auto plan = b->compile(g).value();
  return plan->run({x}).value();
}

inline bool has_backend(const std::string& name) {
  for (const std::string& b : runtime::available_backends()) {
    if (b == name) return true;
  }
  return false;
}

inline double mse(const ir::Tensor& a, const ir::Tensor& b) {
  double s = 0.0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    const double d = static_cast<double>(a.data<float>()[i]) - static_cast<double>(b.data<float>()[i]);
    s += d * d;
  }
  return s / static_cast<double>(a.numel());
}

// A pass from the prune registry with options written as YAML scalars.
inline Expected<std::unique_ptr<pass::Pass>> make_pass(
    const std::string& name, const std::vector<std::pair<std::string, std::string>>& options) {
  pass::PassRegistry registry;
  throw_if_error(prune::register_prune_passes(registry));
  COMPRESS_ASSIGN_OR_RETURN(pass::PassOptions parsed, pass::PassOptions::from_pairs(options, "test"));
  return registry.create(name, parsed);
}

// Every constant of the graph, bit for bit.
inline bool same_constants(const ir::Graph& a, const ir::Graph& b) {
  const auto ca = a.constants(), cb = b.constants();
  if (ca.size() != cb.size()) return false;
  for (size_t i = 0; i < ca.size(); ++i) {
    if (ca[i]->name() != cb[i]->name() || !ca[i]->constant().bitwise_equal(cb[i]->constant())) return false;
  }
  return true;
}

}  // namespace compress::prune_test

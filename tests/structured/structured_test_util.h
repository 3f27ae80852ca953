// Helpers of the structured-pruning tests: the "zeroed original" reference and output comparison.
#pragma once

#include <cmath>
#include <string>
#include <vector>

#include "compress/ir/graph.h"
#include "compress/prune/structured.h"
#include "compress/runtime/reference.h"

namespace compress::test {

// Sets to zero, in `graph` (a clone of the graph the plan was made on), what
// removing the plan's units removes at its source: producer filter rows and
// biases, batch-norm scale and shift, and other constants of the unit (a
// stream's added embedding). The removed channels are then exactly zero
// everywhere downstream, so the consumers' dropped input columns multiply
// zeros only: the pruned graph must compute the same outputs.
inline void zero_removed_channels(ir::Graph& graph, const prune::StructuredPlan& plan) {
  using Role = analysis::ChannelMember::Role;
  for (size_t g = 0; g < plan.analysis.groups.size(); ++g) {
    for (const analysis::ChannelMember& m : plan.analysis.groups[g].members) {
      if (m.role != Role::kProducerWeight && m.role != Role::kProducerBias && m.role != Role::kBatchNormWeight &&
          m.role != Role::kBatchNormBias && m.role != Role::kConstant) {
        continue;
      }
      ir::Value* v = graph.find_value(m.value->name());
      ir::Tensor t = v->constant().clone().value();
      const ir::Shape& s = t.shape();
      int64_t outer = 1, inner = 1;
      for (int64_t d = 0; d < m.axis; ++d) outer *= s[d];
      for (size_t d = m.axis + 1; d < s.size(); ++d) inner *= s[d];
      float* data = t.data<float>();
      for (int64_t u : plan.removed[g]) {
        for (int64_t i : m.indices[u]) {
          for (int64_t o = 0; o < outer; ++o) {
            for (int64_t k = 0; k < inner; ++k) data[(o * s[m.axis] + i) * inner + k] = 0.0f;
          }
        }
      }
      v->set_constant(std::move(t));
    }
  }
}

struct OutputDifference {
  double max_abs = 0;
  double max_ref = 0;
  bool same_shape = true;
  double relative() const { return max_abs / (max_ref > 0 ? max_ref : 1.0); }
};

inline OutputDifference compare_outputs(const std::vector<ir::Tensor>& a, const std::vector<ir::Tensor>& b) {
  OutputDifference d;
  if (a.size() != b.size()) {
    d.same_shape = false;
    return d;
  }
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].shape() != b[i].shape() || a[i].dtype() != ir::DType::kF32 || b[i].dtype() != ir::DType::kF32) {
      d.same_shape = false;
      return d;
    }
    const float* x = a[i].data<float>();
    const float* y = b[i].data<float>();
    for (int64_t k = 0; k < a[i].numel(); ++k) {
      const double diff = std::fabs(double(x[k]) - double(y[k]));
      d.max_abs = std::isnan(diff) ? INFINITY : std::max(d.max_abs, diff);
      d.max_ref = std::max(d.max_ref, std::fabs(double(y[k])));
    }
  }
  return d;
}

// Output channels (weight dim 0) of a conv2d/linear node; -1 when absent.
inline int64_t out_channels(const ir::Graph& graph, const std::string& node) {
  const ir::Node* n = graph.find_node(node);
  return n == nullptr ? -1 : n->input(1)->shape()[0];
}

}  // namespace compress::test

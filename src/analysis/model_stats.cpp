// Parameter counts and the FLOP/MAC cost model of Note [FLOP conventions].
#include "compress/analysis/model_stats.h"

#include <algorithm>
#include <limits>
#include <set>
#include <string_view>
#include <unordered_map>

#include "compress/ir/op_schema.h"
#include "compress/ir/sparse_layout.h"

namespace compress::analysis {
namespace {

constexpr int64_t kMax = std::numeric_limits<int64_t>::max();

// Saturating arithmetic: a cost estimate must never wrap into a negative
// number, even for absurd (but valid) shapes read from a file.
int64_t sat_mul(int64_t a, int64_t b) {
  if (a <= 0 || b <= 0) return 0;
  if (a > kMax / b) return kMax;
  return a * b;
}
int64_t sat_add(int64_t a, int64_t b) { return a > kMax - b ? kMax : a + b; }

int64_t elements(const ir::Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n = sat_mul(n, d);
  return n;
}

int64_t out_elements(const ir::Node& node) {
  return node.num_outputs() == 0 ? 0 : elements(node.output(0)->shape());
}

bool has_input(const ir::Node& node, size_t i) { return node.num_inputs() > i; }

NodeCost macs_cost(int64_t macs, int64_t bias_flops) {
  NodeCost c;
  c.macs = macs;
  c.flops = sat_add(sat_mul(2, macs), bias_flops);
  return c;
}

NodeCost conv_cost(const ir::Node& node) {
  if (!has_input(node, 1)) return {};
  const ir::Shape& w = node.input(1)->shape();
  if (w.empty() || w[0] <= 0) return {};
  // Cin/groups * kh * kw, read from the filter so that the layout of
  // groups and kernel attributes does not matter.
  const int64_t per_output = elements(w) / w[0];
  const int64_t out = out_elements(node);
  return macs_cost(sat_mul(out, per_output), has_input(node, 2) ? out : 0);
}

NodeCost linear_cost(const ir::Node& node) {
  if (!has_input(node, 0) || node.input(0)->shape().empty()) return {};
  const int64_t out = out_elements(node);
  return macs_cost(sat_mul(out, node.input(0)->shape().back()), has_input(node, 2) ? out : 0);
}

NodeCost matmul_cost(const ir::Node& node) {
  if (!has_input(node, 0) || node.input(0)->shape().empty()) return {};
  // A is [..., M, K] (or [K] for a vector): K is its last dim either way.
  return macs_cost(sat_mul(out_elements(node), node.input(0)->shape().back()), 0);
}

NodeCost attention_cost(const ir::Node& node) {
  if (!has_input(node, 2) || node.num_outputs() == 0) return {};
  const ir::Shape& q = node.input(0)->shape();
  const ir::Shape& k = node.input(1)->shape();
  const ir::Shape& out = node.output(0)->shape();  // [batch..., L, Ev]
  if (q.size() < 2 || k.size() < 2 || out.empty() || out.back() <= 0) return {};
  // Rows of the score matrix, with the broadcast batch dims (B, H) of the
  // output rather than those of q alone.
  const int64_t rows = elements(out) / out.back();
  const int64_t scores = sat_mul(rows, k[k.size() - 2]);
  return macs_cost(sat_mul(scores, sat_add(q.back(), out.back())), 0);
}

NodeCost pool_window_cost(const ir::Node& node) {
  int64_t taps = 1;
  if (node.has_attr("kernel")) {
    for (int64_t k : node.attr_ints("kernel")) taps = sat_mul(taps, k);
  }
  NodeCost c;
  c.flops = sat_mul(out_elements(node), taps);
  return c;
}

NodeCost per_element(int64_t n, int64_t per) {
  NodeCost c;
  c.flops = sat_mul(n, per);
  return c;
}

}  // namespace

NodeCost node_cost(const ir::Node& node) {
  // The rule is the op table's (ir::OpSchema::cost); unknown ops are uncounted.
  const ir::CostSpec rule = node.schema() != nullptr ? node.schema()->cost : ir::CostSpec{};
  switch (rule.rule) {
    case ir::CostRule::kUncounted: {
      NodeCost c;
      c.counted = false;
      return c;
    }
    case ir::CostRule::kConv: return conv_cost(node);
    case ir::CostRule::kLinear: return linear_cost(node);
    case ir::CostRule::kMatmul: return matmul_cost(node);
    case ir::CostRule::kAttention: return attention_cost(node);
    case ir::CostRule::kPerOutputElement: return per_element(out_elements(node), rule.flops_per_element);
    case ir::CostRule::kPoolWindow: return pool_window_cost(node);
    case ir::CostRule::kPerInputElement:
      return per_element(has_input(node, 0) ? elements(node.input(0)->shape()) : 0, rule.flops_per_element);
    case ir::CostRule::kFree: return {};
  }
  return {};
}

int64_t stored_bytes(const ir::Tensor& tensor) {
  if (!tensor.defined()) return 0;
  int64_t bytes = static_cast<int64_t>(tensor.nbytes());
  if (const auto& layout = tensor.sparse_layout()) {
    for (const ir::Tensor& index : layout->indices) bytes = sat_add(bytes, static_cast<int64_t>(index.nbytes()));
  }
  return bytes;
}

double effective_bits_per_weight(const ir::Tensor& weight) {
  if (!weight.defined()) return 0.0;
  if (!weight.is_sparse()) return ir::dtype_bits(weight.dtype());
  const int64_t n = weight.numel();
  if (n <= 0) return 0.0;
  return static_cast<double>(stored_bytes(weight)) * 8.0 / static_cast<double>(n);
}

namespace {

ValueSignature signature(const ir::Value& value) { return {value.name(), value.dtype(), value.shape()}; }

LayerStats layer_stats(const ir::Node& node, const NodeCost& cost) {
  LayerStats row;
  row.name = node.name();
  row.op = node.op();
  if (node.num_outputs() > 0) {
    row.output_shape = node.output(0)->shape();
    row.output_dtype = node.output(0)->dtype();
  }
  const ir::Value* weight = nullptr;
  for (const ir::Value* in : node.inputs()) {
    if (!in->is_constant()) continue;
    const int64_t n = in->constant().defined() ? in->constant().numel() : 0;
    row.params = sat_add(row.params, n);
    if (weight == nullptr || n > weight->constant().numel()) weight = in;
  }
  if (weight != nullptr && weight->constant().defined()) {
    const ir::Tensor& t = weight->constant();
    row.weight_name = weight->name();
    row.weight_dtype = t.dtype();
    row.weight_sparsity = t.sparsity();
    row.bits_per_weight = effective_bits_per_weight(t);
    row.weight_layout = t.sparse_layout() ? std::string(ir::sparse_format_name(t.sparse_layout()->format))
                                          : std::string("dense");
    row.weight_quantized = t.is_quantized();
  }
  row.flops = cost.flops;
  row.macs = cost.macs;
  return row;
}

}  // namespace

ModelCost compute_model_cost(const ir::Graph& graph) {
  ModelCost cost;
  for (const ir::Value* c : graph.constants()) {
    if (c->constant().defined()) cost.params = sat_add(cost.params, c->constant().numel());
  }
  for (const auto& node : graph.node_list()) {
    const NodeCost n = node_cost(*node);
    cost.flops = sat_add(cost.flops, n.flops);
    cost.macs = sat_add(cost.macs, n.macs);
  }
  return cost;
}

ModelStats compute_model_stats(const ir::Graph& graph) {
  ModelStats stats;
  stats.name = graph.name;
  for (const ir::Value* v : graph.inputs()) stats.inputs.push_back(signature(*v));
  for (const ir::Value* v : graph.outputs()) stats.outputs.push_back(signature(*v));

  for (const ir::Value* c : graph.constants()) {
    const ir::Tensor& t = c->constant();
    if (!t.defined()) continue;
    stats.num_params = sat_add(stats.num_params, t.numel());
    int64_t& by_dtype = stats.params_by_dtype[std::string(ir::dtype_name(t.dtype()))];
    by_dtype = sat_add(by_dtype, t.numel());
    stats.weight_bytes = sat_add(stats.weight_bytes, stored_bytes(t));
  }

  std::set<std::string> uncounted;
  for (const auto& node : graph.node_list()) {
    ++stats.num_nodes;
    ++stats.op_counts[node->op()];
    const NodeCost cost = node_cost(*node);
    if (!cost.counted) uncounted.insert(node->op());
    stats.layers.push_back(layer_stats(*node, cost));
    stats.flops = sat_add(stats.flops, stats.layers.back().flops);
    stats.macs = sat_add(stats.macs, stats.layers.back().macs);
  }
  stats.uncounted_ops.assign(uncounted.begin(), uncounted.end());
  return stats;
}

}  // namespace compress::analysis

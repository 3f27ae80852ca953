// quant.cle: cross-layer equalization (Note [Cross-layer equalization]).
#include "compress/quant/cle_pass.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "compress/pass/options.h"
#include "compress/support/logging.h"
#include "graph_edit.h"

namespace compress::quant {
namespace {

// Ops between the two layers through which a positive per-channel scale passes unchanged.
bool passes_scale(const ir::Node& n) {
  if (n.is(ir::OpKind::relu) || n.is(ir::OpKind::max_pool2d) || n.is(ir::OpKind::avg_pool2d) || n.is(ir::OpKind::adaptive_avg_pool2d)) {
    return true;
  }
  return n.is(ir::OpKind::clamp) && n.attr_float("min") == 0.0 && std::isinf(n.attr_float("max")) &&
         n.attr_float("max") > 0.0;
}

struct Pair {
  ir::Node* first;
  ir::Node* second;
};

// The layer that reads `first`'s output through scale-passing ops only, each
// value on the way having exactly one user and not being a graph output.
ir::Node* equalizable_successor(const ir::Graph& g, ir::Node* first) {
  ir::Value* v = first->output();
  while (true) {
    if (v->uses().size() != 1 || g.is_output(v)) return nullptr;
    const ir::Use& use = v->uses()[0];
    ir::Node* n = use.user;
    if (use.input_index != 0) return nullptr;
    if (n->op() == first->op() && is_weighted_layer(*n)) return n;
    if (!passes_scale(*n)) return nullptr;
    v = n->output();
  }
}

// Channel layout checks: conv2d channels on axis 1 of NCHW; linear on the last axis.
bool channels_match(const Pair& p) {
  const ir::Shape& w1 = p.first->input(1)->shape();
  const ir::Shape& w2 = p.second->input(1)->shape();
  if (p.first->is(ir::OpKind::conv2d)) {
    const int64_t groups = p.second->attr_int("groups");
    return w2.size() == 4 && w1[0] == w2[1] * groups && w2[0] % groups == 0;
  }
  return w2.size() == 2 && w1[0] == w2[1];
}

// For input channel c of `second`, calls f(flat index) for each weight that reads it.
template <typename F>
void for_input_channel(const ir::Node& second, int64_t c, F&& f) {
  const ir::Shape& w = second.input(1)->shape();
  if (second.is(ir::OpKind::linear)) {
    for (int64_t o = 0; o < w[0]; ++o) f(o * w[1] + c);
    return;
  }
  const int64_t groups = second.attr_int("groups");
  const int64_t cg = w[1], og = w[0] / groups, k = w[2] * w[3];
  const int64_t group = c / cg, local = c % cg;
  for (int64_t o = group * og; o < (group + 1) * og; ++o) {
    for (int64_t i = 0; i < k; ++i) f((o * cg + local) * k + i);
  }
}

// Equalizes one pair in place; returns the largest |s_c - 1|.
Expected<double> equalize(ir::Graph& g, const Pair& p, std::map<std::string, double>& scale_min,
                          std::map<std::string, double>& scale_max, int64_t& dead_channels) {
  COMPRESS_ASSIGN_OR_RETURN(std::vector<double> w1, to_double(*p.first->input(1)));
  COMPRESS_ASSIGN_OR_RETURN(std::vector<double> b1, bias_of(*p.first));
  COMPRESS_ASSIGN_OR_RETURN(std::vector<double> w2, to_double(*p.second->input(1)));
  const int64_t channels = p.first->input(1)->shape()[0];
  const int64_t per_channel = static_cast<int64_t>(w1.size()) / channels;
  double moved = 0.0;
  for (int64_t c = 0; c < channels; ++c) {
    double r1 = 0.0, r2 = 0.0;
    for (int64_t i = 0; i < per_channel; ++i) r1 = std::max(r1, std::fabs(w1[c * per_channel + i]));
    for_input_channel(*p.second, c, [&](int64_t at) { r2 = std::max(r2, std::fabs(w2[at])); });
    if (r1 == 0.0 || r2 == 0.0) {
      ++dead_channels;  // pruned channel: nothing to balance, s = 1
      continue;
    }
    const double s = std::sqrt(r1 / r2);  // = sqrt(r1 * r2) / r2
    if (!std::isfinite(s) || s == 0.0) continue;
    for (int64_t i = 0; i < per_channel; ++i) w1[c * per_channel + i] /= s;
    b1[c] /= s;
    for_input_channel(*p.second, c, [&](int64_t at) { w2[at] *= s; });
    moved = std::max(moved, std::fabs(s - 1.0));
    auto& lo = scale_min.try_emplace(p.first->name(), s).first->second;
    auto& hi = scale_max.try_emplace(p.first->name(), s).first->second;
    lo = std::min(lo, s);
    hi = std::max(hi, s);
  }
  COMPRESS_RETURN_IF_ERROR(replace_constant_input(g, p.first, 1, w1, ".cle"));
  if (p.first->num_inputs() > 2) COMPRESS_RETURN_IF_ERROR(replace_constant_input(g, p.first, 2, b1, ".cle"));
  COMPRESS_RETURN_IF_ERROR(replace_constant_input(g, p.second, 1, w2, ".cle"));
  return moved;
}

}  // namespace

Expected<pass::PassResult> CrossLayerEqualizationPass::run(ir::Graph& graph, pass::PassContext& /*context*/) {
  pass::PassResult result;
  std::vector<Pair> pairs;
  bool batch_norm = false;
  for (ir::Node* n : graph.nodes()) {
    batch_norm = batch_norm || n->is(ir::OpKind::batch_norm);
    if (!is_weighted_layer(*n)) continue;
    ir::Node* next = equalizable_successor(graph, n);
    if (next != nullptr && channels_match(Pair{n, next})) pairs.push_back(Pair{n, next});
  }
  if (batch_norm) log_warning("quant.cle: the graph has batch_norm nodes; run transforms.fold_batch_norm first");
  if (pairs.empty()) {
    log_warning("quant.cle: no conv2d/linear pair to equalize");
    return result;
  }
  // Accumulated per-pair scales are the product of each round's; the
  // reported min/max are of the last round that moved (enough for a log).
  std::map<std::string, double> scale_min, scale_max;
  int64_t rounds = 0, dead = 0;
  for (; rounds < options_.iterations; ++rounds) {
    double moved = 0.0;
    dead = 0;
    scale_min.clear();
    scale_max.clear();
    for (const Pair& p : pairs) {
      COMPRESS_ASSIGN_OR_RETURN(double m, equalize(graph, p, scale_min, scale_max, dead));
      moved = std::max(moved, m);
    }
    if (moved < options_.tolerance) {
      ++rounds;
      break;
    }
  }
  graph.remove_unused_constants();
  for (const Pair& p : pairs) {
    auto& s = result.layers[p.first->name()];
    s["cle_next"] = 1.0;
    if (scale_min.count(p.first->name()) != 0) {
      s["cle_scale_min"] = scale_min[p.first->name()];
      s["cle_scale_max"] = scale_max[p.first->name()];
    }
  }
  if (dead > 0) log_warning("quant.cle: {} channels with all-zero weights kept their scale", dead);
  result.counters["pairs"] = static_cast<double>(pairs.size());
  result.counters["rounds"] = static_cast<double>(rounds);
  result.counters["dead_channels"] = static_cast<double>(dead);
  result.changed = true;
  return result;
}

Expected<CrossLayerEqualizationPass::Options> CrossLayerEqualizationPass::parse_options(
    const pass::PassOptions& options) {
  Options o;
  COMPRESS_ASSIGN_OR_RETURN(o.iterations, options.integer("iterations", o.iterations, 1, 1000));
  COMPRESS_ASSIGN_OR_RETURN(o.tolerance, options.number("tolerance", o.tolerance, pass::Range::positive()));
  return o;
}

}  // namespace compress::quant

// prune.structured: plan (groups, importance, per-group counts) and surgery (Note [Structured pruning]).
#include "compress/prune/structured.h"

#include <fnmatch.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <numeric>
#include <set>

#include "compress/analysis/model_stats.h"
#include "compress/analysis/weighted_layers.h"
#include "compress/ir/dtype.h"
#include "compress/ir/sparse_layout.h"
#include "compress/ir/verifier.h"
#include "compress/support/check.h"
#include "compress/support/logging.h"

namespace compress::prune {
namespace {

bool is_channel_producer(const ir::Node& n) {
  return analysis::as_weighted_layer(n, channel_layer_query()).has_value();
}


using analysis::ChannelGroup;
using analysis::ChannelMember;

bool pattern_matches(const std::string& pattern, const std::string& name) {
  return fnmatch(pattern.c_str(), name.c_str(), 0) == 0;
}

// Units a group may lose when `want` are asked for: it keeps at least
// min_channels units, and with round_to (unit width 1) a kept count that is a
// multiple of round_to (rounded up, never above the group's size).
int64_t constrained_removal(const ChannelGroup& g, int64_t want, const StructuredOptions& o) {
  const int64_t n = g.num_units;
  int64_t kept = std::max<int64_t>(n - std::clamp<int64_t>(want, 0, n), std::min(n, o.min_channels));
  if (o.round_to > 1 && g.unit_width == 1) {
    kept = std::min(n, (kept + o.round_to - 1) / o.round_to * o.round_to);
  }
  return n - kept;
}

// Copy of `t` keeping only `keep` indices (ascending) along `axis`.
Expected<ir::Tensor> take_along_axis(const ir::Tensor& t, int64_t axis, const std::vector<int64_t>& keep) {
  COMPRESS_CHECK(!t.is_sparse() && !t.is_quantized() && !ir::is_packed(t.dtype()), StatusCode::kUnsupported,
                 "structured pruning cannot slice a quantized or packed tensor");
  ir::Shape shape = t.shape();
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= shape[d];
  for (size_t d = axis + 1; d < shape.size(); ++d) inner *= shape[d];
  const int64_t n = shape[axis];
  shape[axis] = static_cast<int64_t>(keep.size());
  COMPRESS_ASSIGN_OR_RETURN(ir::Tensor out, ir::Tensor::zeros(t.dtype(), shape));
  const size_t esize = static_cast<size_t>(ir::dtype_bits(t.dtype()) / 8);
  const size_t row = static_cast<size_t>(inner) * esize;
  const auto* src = static_cast<const uint8_t*>(t.raw_data());
  auto* dst = static_cast<uint8_t*>(out.raw_data());
  for (int64_t o = 0; o < outer; ++o) {
    for (size_t k = 0; k < keep.size(); ++k) {
      std::memcpy(dst + (o * static_cast<int64_t>(keep.size()) + static_cast<int64_t>(k)) * row,
                  src + (o * n + keep[k]) * row, row);
    }
  }
  return out;
}


// Removed indices per (value name, axis) of a plan.
using Removal = std::map<std::pair<std::string, int64_t>, std::set<int64_t>>;

Removal removal_of(const StructuredPlan& plan) {
  Removal r;
  for (size_t g = 0; g < plan.analysis.groups.size(); ++g) {
    const ChannelGroup& group = plan.analysis.groups[g];
    for (const ChannelMember& m : group.members) {
      auto& set = r[{m.value->name(), m.axis}];
      for (int64_t u : plan.removed[g]) set.insert(m.indices[u].begin(), m.indices[u].end());
    }
  }
  for (auto it = r.begin(); it != r.end();) it = it->second.empty() ? r.erase(it) : std::next(it);
  return r;
}

std::vector<int64_t> kept_indices(int64_t size, const std::set<int64_t>* removed) {
  std::vector<int64_t> keep;
  for (int64_t i = 0; i < size; ++i) {
    if (!removed || !removed->count(i)) keep.push_back(i);
  }
  return keep;
}

}  // namespace

int64_t StructuredPlan::removed_units() const {
  int64_t n = 0;
  for (const auto& r : removed) n += static_cast<int64_t>(r.size());
  return n;
}

Status apply_structured_plan(ir::Graph& graph, const StructuredPlan& plan) {
  const Removal removal = removal_of(plan);
  auto removed_of = [&](const ir::Value* v, int64_t axis) -> const std::set<int64_t>* {
    auto it = removal.find({v->name(), axis});
    return it == removal.end() ? nullptr : &it->second;
  };
  // The shape every touched value must have afterwards.
  std::map<std::string, ir::Shape> new_shape;
  for (const auto& [key, set] : removal) {
    ir::Value* v = graph.find_value(key.first);
    COMPRESS_CHECK(v != nullptr, StatusCode::kInvalidArgument, "structured plan: the graph has no value '{}'",
                   key.first);
    auto it = new_shape.emplace(key.first, v->shape()).first;
    it->second[key.second] -= static_cast<int64_t>(set.size());
  }
  // Node attributes that name channel counts, read before any shape changes.
  for (ir::Node* n : graph.nodes()) {
    const ir::OpKind op = n->kind();
    if (op == ir::OpKind::conv2d && n->attr_int("groups") > 1 && removed_of(n->input(0), 1)) {
      const int64_t per_group = n->input(1)->shape()[1];
      const int64_t cin = new_shape.at(n->input(0)->name())[1];
      COMPRESS_CHECK(cin % per_group == 0, StatusCode::kInternal, "structured: conv '{}' keeps {} input channels, "
                     "not a multiple of {}", n->name(), cin, per_group);
      n->set_attr("groups", cin / per_group);
    } else if (op == ir::OpKind::split) {
      const int64_t r = static_cast<int64_t>(n->input(0)->shape().size());
      int64_t axis = n->attr_int("axis");
      if (axis < 0) axis += r;
      if (!removed_of(n->input(0), axis)) continue;
      std::vector<int64_t> sizes;
      for (const ir::Value* out : n->outputs()) {
        auto it = new_shape.find(out->name());
        sizes.push_back(it == new_shape.end() ? out->shape()[axis] : it->second[axis]);
      }
      n->set_attr("sizes", sizes);
    } else if (op == ir::OpKind::slice) {
      const ir::Value* x = n->input(0);
      int64_t axis = n->attr_int("axis");
      if (axis < 0) axis += static_cast<int64_t>(x->shape().size());
      const std::set<int64_t>* rem = removed_of(x, axis);
      if (!rem) continue;
      const int64_t size = x->shape()[axis];
      auto norm = [&](int64_t i) { return std::clamp<int64_t>(i < 0 ? i + size : i, 0, size); };
      const int64_t s = norm(n->attr_int("start")), e = std::max(s, norm(n->attr_int("end")));
      int64_t before = 0, inside = 0;
      for (int64_t i = 0; i < e; ++i) {
        if (rem->count(i)) continue;
        (i < s ? before : inside) += 1;
      }
      n->set_attr("start", before);
      n->set_attr("end", before + inside);
    } else if (op == ir::OpKind::reshape) {
      auto it = new_shape.find(n->output(0)->name());
      if (it == new_shape.end()) continue;
      std::vector<int64_t> shape = n->attr_ints("shape");
      if (shape.size() != it->second.size()) {
        shape = it->second;
      } else {
        for (size_t d = 0; d < shape.size(); ++d) {
          if (shape[d] != -1) shape[d] = it->second[d];
        }
      }
      n->set_attr("shape", shape);
    }
  }
  // Slice the constants, and the stored scores of producers that lose
  // channels (Note [Stored importance]: they keep the weight's length).
  for (const auto& [key, set] : removal) {
    ir::Value* v = graph.find_value(key.first);
    if (!v->is_constant()) continue;
    for (const ir::Use& use : v->uses()) {
      const ir::Node* n = use.user;
      if (key.second != 0 || !is_channel_producer(*n) ||
          static_cast<int>(use.input_index) != ir::find_op(n->op())->weighted.weight_input) {
        continue;
      }
      COMPRESS_ASSIGN_OR_RETURN(const ir::Tensor* stored, stored_channel_importance(graph, *n));
      if (stored == nullptr) continue;
      const std::vector<int64_t> keep = kept_indices(stored->shape()[0], &set);
      COMPRESS_ASSIGN_OR_RETURN(ir::Tensor t, take_along_axis(*stored, 0, keep));
      COMPRESS_RETURN_IF_ERROR(
          graph.annotations().set(ir::kChannelImportanceKind, ir::AnnotationTarget::node(*n), std::move(t)));
    }
    // A pruned (sparse) constant is sliced dense and stored back in its
    // layout (Note [Writing back a weight]), so it stays pruned.
    const ir::Tensor& stored_value = v->constant();
    const std::vector<int64_t> keep = kept_indices(stored_value.shape()[key.second], &set);
    COMPRESS_ASSIGN_OR_RETURN(const ir::Tensor dense, stored_value.to_dense());
    COMPRESS_ASSIGN_OR_RETURN(ir::Tensor t, take_along_axis(dense, key.second, keep));
    if (stored_value.is_sparse()) {
      std::string fallback;
      COMPRESS_ASSIGN_OR_RETURN(t, ir::store_like(t, stored_value, &fallback));
      if (!fallback.empty()) log_info("prune.structured: '{}': {}; stored as csr", v->name(), fallback);
    }
    v->set_constant(std::move(t));
  }
  COMPRESS_RETURN_IF_ERROR(graph.infer_types());
  for (const auto& [name, shape] : new_shape) {
    const ir::Value* v = graph.find_value(name);
    COMPRESS_CHECK(v->shape() == shape, StatusCode::kInternal,
                   "structured pruning: '{}' has shape {} after surgery, expected {}", name,
                   ir::shape_to_string(v->shape()), ir::shape_to_string(shape));
  }
  return ir::verify(graph);
}

Expected<StructuredPlan> plan_structured_pruning(const ir::Graph& graph, const StructuredOptions& o) {
  const int modes = (o.ratio >= 0) + (o.target_flops >= 0) + (o.target_params >= 0);
  COMPRESS_CHECK(modes <= 1, StatusCode::kInvalidArgument,
                 "prune.structured: give one of ratio, target_flops and target_params, not {}", modes);
  const double ratio = modes == 0 ? 0.5 : o.ratio;
  for (double f : {ratio, o.target_flops, o.target_params}) {
    COMPRESS_CHECK(f < 0 || (f >= 0 && f < 1), StatusCode::kInvalidArgument,
                   "prune.structured: fraction {} is outside [0, 1)", f);
  }
  COMPRESS_CHECK(o.round_to >= 1 && o.min_channels >= 1, StatusCode::kInvalidArgument,
                 "prune.structured: round_to and min_channels must be >= 1");
  COMPRESS_ASSIGN_OR_RETURN(ImportanceCriterion criterion, parse_importance_criterion(o.criterion));
  for (const std::string& p : o.exclude) {
    bool any = false;
    for (const ir::Node* n : graph.nodes()) any = any || pattern_matches(p, n->name());
    COMPRESS_CHECK(any, StatusCode::kInvalidArgument, "prune.structured: exclude pattern '{}' matches no node", p);
  }

  StructuredPlan plan;
  COMPRESS_ASSIGN_OR_RETURN(plan.analysis, analysis::analyze_channel_groups(graph));
  const auto& groups = plan.analysis.groups;
  plan.removed.assign(groups.size(), {});

  // Candidates: prunable, not excluded, more than min_channels units.
  std::vector<size_t> live;
  for (size_t g = 0; g < groups.size(); ++g) {
    const ChannelGroup& group = groups[g];
    bool excluded = false;
    for (const std::string& name : group.producers) {
      for (const std::string& p : o.exclude) excluded = excluded || pattern_matches(p, name);
    }
    if (!group.prunable) {
      plan.skipped.push_back(group.label() + ": " + group.reason);
      log_warning("prune.structured: skipping {} ({} channels): {}", group.label(), group.num_units, group.reason);
    } else if (excluded) {
      plan.skipped.push_back(group.label() + ": excluded");
      log_info("prune.structured: {} is excluded", group.label());
    } else if (group.num_units <= o.min_channels) {
      plan.skipped.push_back(group.label() + ": at min_channels");
    } else {
      live.push_back(g);
    }
  }
  if (live.empty()) {
    std::string why;
    for (size_t i = 0; i < plan.skipped.size() && i < 5; ++i) why += "\n  " + plan.skipped[i];
    if (plan.skipped.size() > 5) why += fmt::format("\n  ... and {} more", plan.skipped.size() - 5);
    if (plan.skipped.empty()) why = " (no conv2d or linear layer with a constant weight)";
    return make_error(StatusCode::kInvalidArgument, "prune.structured: the graph has nothing prunable:{}", why);
  }

  // Scores, and each group's units from least to most important.
  std::vector<std::vector<double>> score(groups.size());
  std::vector<std::vector<int64_t>> order(groups.size());
  for (size_t g : live) {
    COMPRESS_ASSIGN_OR_RETURN(score[g], unit_importance(groups[g], criterion));
    const double mean =
        std::accumulate(score[g].begin(), score[g].end(), 0.0) / static_cast<double>(score[g].size());
    if (mean > 0) {
      for (double& s : score[g]) s /= mean;
    }
    order[g].resize(score[g].size());
    std::iota(order[g].begin(), order[g].end(), 0);
    std::stable_sort(order[g].begin(), order[g].end(),
                     [&](int64_t a, int64_t b) { return score[g][a] < score[g][b]; });
  }
  auto take = [&](size_t g, int64_t count) {
    std::vector<int64_t> r(order[g].begin(), order[g].begin() + count);
    std::sort(r.begin(), r.end());
    plan.removed[g] = std::move(r);
  };

  if (o.target_flops < 0 && o.target_params < 0) {
    for (size_t g : live) {
      take(g, constrained_removal(groups[g], static_cast<int64_t>(std::floor(ratio * groups[g].num_units)), o));
    }
    return plan;
  }

  // Global ranking of all candidate units by normalized score.
  std::vector<std::pair<double, size_t>> ranking;  // (score, group)
  for (size_t g : live) {
    for (double s : score[g]) ranking.emplace_back(s, g);
  }
  std::stable_sort(ranking.begin(), ranking.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  const bool flops = o.target_flops >= 0;
  const double target = flops ? o.target_flops : o.target_params;
  const analysis::ModelCost base = analysis::compute_model_cost(graph);
  const double total = static_cast<double>(flops ? base.flops : base.params);
  // Removed fraction when the first k ranked units are asked for.
  auto evaluate = [&](size_t k) -> Expected<double> {
    std::vector<int64_t> want(groups.size(), 0);
    for (size_t i = 0; i < k; ++i) ++want[ranking[i].second];
    for (size_t g : live) take(g, constrained_removal(groups[g], want[g], o));
    ir::Graph copy = graph.clone();
    COMPRESS_RETURN_IF_ERROR(apply_structured_plan(copy, plan));
    const analysis::ModelCost m = analysis::compute_model_cost(copy);
    return 1.0 - static_cast<double>(flops ? m.flops : m.params) / (total > 0 ? total : 1.0);
  };
  COMPRESS_ASSIGN_OR_RETURN(double most, evaluate(ranking.size()));
  COMPRESS_CHECK(most >= target, StatusCode::kInvalidArgument,
                 "prune.structured: target_{} {} cannot be reached; removing every prunable channel (down to "
                 "min_channels) removes {:.3f}",
                 flops ? "flops" : "params", target, most);
  size_t lo = 0, hi = ranking.size();  // evaluate(hi) >= target
  while (lo < hi) {
    const size_t mid = lo + (hi - lo) / 2;
    COMPRESS_ASSIGN_OR_RETURN(double f, evaluate(mid));
    if (f >= target) {
      hi = mid;
    } else {
      lo = mid + 1;
    }
  }
  COMPRESS_ASSIGN_OR_RETURN(double reached, evaluate(hi));
  log_info("prune.structured: removing {} of {} ranked units removes {:.4f} of the {}", hi, ranking.size(), reached,
           flops ? "FLOPs" : "parameters");
  return plan;
}

Expected<StructuredOptions> StructuredPrunePass::parse_options(const pass::PassOptions& options) {
  Options o;
  COMPRESS_ASSIGN_OR_RETURN(o.criterion, options.string("criterion", o.criterion, importance_criterion_names()));
  const auto fraction = pass::Range::half_open(0.0, 1.0);
  int modes = 0;
  if (options.has("ratio")) {
    COMPRESS_ASSIGN_OR_RETURN(o.ratio, options.number("ratio", 0.5, fraction));
    ++modes;
  }
  if (options.has("target_flops")) {
    COMPRESS_ASSIGN_OR_RETURN(o.target_flops, options.number("target_flops", 0.5, fraction));
    ++modes;
  }
  if (options.has("target_params")) {
    COMPRESS_ASSIGN_OR_RETURN(o.target_params, options.number("target_params", 0.5, fraction));
    ++modes;
  }
  COMPRESS_CHECK(modes <= 1, StatusCode::kInvalidArgument, "{}: give one of ratio, target_flops, target_params",
                 options.where("ratio"));
  if (modes == 0) o.ratio = 0.5;
  COMPRESS_ASSIGN_OR_RETURN(o.round_to, options.integer("round_to", o.round_to, 1, 4096));
  COMPRESS_ASSIGN_OR_RETURN(o.min_channels, options.integer("min_channels", o.min_channels, 1, int64_t{1} << 30));
  COMPRESS_ASSIGN_OR_RETURN(o.exclude, options.string_list("exclude"));
  return o;
}

Expected<pass::PassResult> StructuredPrunePass::run(ir::Graph& graph, pass::PassContext& context) {
  (void)context;
  COMPRESS_ASSIGN_OR_RETURN(StructuredPlan plan, plan_structured_pruning(graph, options_));
  pass::PassResult result;
  const analysis::ModelCost before = analysis::compute_model_cost(graph);
  // Channel counts per producer, before and after.
  std::map<std::string, int64_t> before_channels;
  for (const ir::Node* n : graph.nodes()) {
    if (is_channel_producer(*n)) before_channels[n->name()] = n->input(1)->shape()[0];
  }
  if (plan.removed_units() == 0) {
    log_warning("prune.structured: the options remove no channel (ratio too small for round_to/min_channels?)");
    return result;
  }
  COMPRESS_RETURN_IF_ERROR(apply_structured_plan(graph, plan));
  const analysis::ModelCost after = analysis::compute_model_cost(graph);
  result.changed = true;
  for (const auto& [name, count] : before_channels) {
    const ir::Node* n = graph.find_node(name);
    if (n == nullptr) continue;
    auto& layer = result.layers[name];
    layer["channels_before"] = static_cast<double>(count);
    layer["channels_after"] = static_cast<double>(n->input(1)->shape()[0]);
  }
  int64_t pruned_groups = 0;
  for (const auto& r : plan.removed) pruned_groups += r.empty() ? 0 : 1;
  result.counters["flops_before"] = static_cast<double>(before.flops);
  result.counters["flops_after"] = static_cast<double>(after.flops);
  result.counters["params_before"] = static_cast<double>(before.params);
  result.counters["params_after"] = static_cast<double>(after.params);
  result.counters["groups_pruned"] = static_cast<double>(pruned_groups);
  result.counters["groups_skipped"] = static_cast<double>(plan.skipped.size());
  result.counters["units_removed"] = static_cast<double>(plan.removed_units());
  log_info("prune.structured: FLOPs {} -> {} ({:.1f}%), params {} -> {}", before.flops, after.flops,
           100.0 * static_cast<double>(after.flops) / std::max<double>(1.0, static_cast<double>(before.flops)),
           before.params, after.params);
  return result;
}

Status register_structured_passes(pass::PassRegistry& registry) {
  return registry.add<StructuredPrunePass>("prune.structured");
}

}  // namespace compress::prune

// prune.structured: removes whole filters, neurons and attention heads and shrinks the graph (no masks).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "compress/analysis/channel_groups.h"
#include "compress/pass/pass.h"
#include "compress/pass/registry.h"
#include "compress/prune/importance.h"

namespace compress::prune {

// Note [Structured pruning]
// 1. analysis::analyze_channel_groups finds the coupled units (Note [Channel
//    groups]); groups that cannot be pruned are skipped with a warning.
// 2. Each unit gets an importance (Note [Structured importance]).
// 3. How many units each group loses:
//    - `ratio`: that fraction of every group's units (its lowest scores);
//    - `target_flops` / `target_params`: that fraction of the graph's FLOPs
//      (analysis::node_cost) or parameters is removed. Scores are divided by
//      their group's mean, all units of all groups are ranked together, and
//      the smallest prefix of the ranking that reaches the target is found by
//      bisection, each candidate measured on a pruned copy — so per-layer
//      ratios come out of the global ranking and the target is met exactly.
//    A group always keeps `min_channels` units, and with `round_to` R its
//    kept channel count is rounded up to a multiple of R (groups of unit
//    width 1 only: filters/neurons, not heads or conv groups).
// 4. Surgery: every (value, axis) member loses the removed indices. Constants
//    are sliced (weights, biases, BN statistics, the next layers' input
//    columns), and so is the stored importance of a producer (Note [Stored
//    importance], an annotation of the node); conv groups, split
//    sizes, slice bounds and reshape shapes are rewritten; shapes are
//    re-inferred and the graph verified.
// The result is dense and smaller, and computes exactly what the original
// computes with the removed channels zeroed (their filters, biases and BN
// scale and shift set to 0), as long as the activations between a removed
// channel and its consumers map 0 to 0 (tests/structured holds this on every
// fixture).
struct StructuredOptions {
  std::string criterion = "l1";  // l1 | l2 | bn_gamma | taylor (needs stored scores)
  // Exactly one of the three (ratio when none is given): fractions in [0, 1).
  double ratio = -1;
  double target_flops = -1;
  double target_params = -1;
  int64_t round_to = 1;
  int64_t min_channels = 1;
  std::vector<std::string> exclude;  // node-name patterns (glob); a group with a matching producer is kept
};

// What to remove: for each group of `analysis`, the unit indices removed.
struct StructuredPlan {
  analysis::ChannelAnalysis analysis;
  std::vector<std::vector<int64_t>> removed;  // per group, ascending unit indices
  std::vector<std::string> skipped;           // "label: reason" of groups not pruned
  int64_t removed_units() const;
};

// Chooses what to remove. Errors: a pattern that matches no node, a graph with
// no prunable group, a target that cannot be reached.
Expected<StructuredPlan> plan_structured_pruning(const ir::Graph& graph, const StructuredOptions& options);
// Applies a plan made on `graph` or on a graph with the same value names (a clone).
Status apply_structured_plan(ir::Graph& graph, const StructuredPlan& plan);

class StructuredPrunePass : public pass::Pass {
 public:
  using Options = StructuredOptions;
  // Reads criterion, ratio, target_flops, target_params, round_to, min_channels, exclude.
  static Expected<Options> parse_options(const pass::PassOptions& options);
  StructuredPrunePass() = default;
  explicit StructuredPrunePass(Options options) : options_(std::move(options)) {}
  std::string name() const override { return "prune.structured"; }
  // layers[producer]: "channels_before", "channels_after"; counters:
  // "flops_before/after", "params_before/after", "groups_pruned", "groups_skipped", "units_removed".
  Expected<pass::PassResult> run(ir::Graph& graph, pass::PassContext& context) override;

 private:
  Options options_;
};

Status register_structured_passes(pass::PassRegistry& registry);

}  // namespace compress::prune

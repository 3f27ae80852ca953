// Importance criteria of structured pruning: one score per unit (filter, neuron, head) of a channel group.
#pragma once

#include <string>
#include <vector>

#include "compress/analysis/channel_groups.h"
#include "compress/analysis/weighted_layers.h"
#include "compress/support/status.h"

namespace compress::prune {

// Note [Structured importance]
// A unit's score sums over every producer of its group, so a residual stage's
// channel counts the filters of all the convolutions that write it:
//   l1        sum of |w| over the unit's rows of every producer weight
//   l2        sqrt of the sum of w^2 over the same rows
//   bn_gamma  sum of |gamma| over the batch norms of the group (network
//             slimming); a group without a batch norm falls back to l1
//   taylor    sum over the group's producers of the score stored on the
//             producer node as an annotation (Note [Stored importance]); a
//             producer without one is an error
// Scores are raw; the pass normalizes them per group (divides by the group
// mean) before a global ranking compares groups.
enum class ImportanceCriterion { kL1, kL2, kBnGamma, kTaylor };

// Note [Stored importance]
// Gradient-based scores need LibTorch, which the prune layer must not depend
// on, so they are computed by a separate pass (distill.taylor_importance,
// Note [Taylor importance]) and handed over through the graph: one
// annotation of kind ir::kChannelImportanceKind per conv2d/linear node N,
// f32 [out_channels], entry o the score of N's output channel o (Note
// [Annotations]). It survives clone() and .cmf save/load, and goes with N:
// a pass that replaces N (BN folding, int8 conversion) drops it.
// prune.structured slices it along with the channels it removes, so its
// length always matches the node's weight (the kept channels keep the scores
// measured before pruning: re-run the scoring pass for fresh ones).

// The layers whose output channels structured pruning scores, slices and
// reports: conv2d and linear with a constant weight of any storage, bias or
// not. Importance, structured pruning and Taylor scores all ask this.
analysis::WeightedLayerQuery channel_layer_query();

// Stores (or replaces) the scores of the node named `node`; every score must
// be finite and >= 0, and a name that is not a node of the graph is an error naming it.
Status store_channel_importance(ir::Graph& graph, const std::string& node, const std::vector<float>& scores);
// The stored scores of `node` (a node of `graph`), nullptr when there are
// none; an error when they are not f32 [k] with k == the node weight's output channels.
Expected<const ir::Tensor*> stored_channel_importance(const ir::Graph& graph, const ir::Node& node);

const std::vector<std::string>& importance_criterion_names();  // "l1", "l2", "bn_gamma", "taylor"
Expected<ImportanceCriterion> parse_importance_criterion(const std::string& name);

// One score per unit of `group` (size group.num_units). Fails for a producer
// weight that is not a dense f32 constant, and (taylor) for a producer with no
// stored score.
Expected<std::vector<double>> unit_importance(const analysis::ChannelGroup& group, ImportanceCriterion criterion);

}  // namespace compress::prune

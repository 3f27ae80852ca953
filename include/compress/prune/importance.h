// Importance criteria of structured pruning: one score per unit (filter, neuron, head) of a channel group.
#pragma once

#include <string>
#include <vector>

#include "compress/analysis/channel_groups.h"
#include "compress/support/status.h"

namespace compress::prune {

// Note [Structured importance]
// A unit's score sums over every producer of its group, so a residual stage's
// channel counts the filters of all the convolutions that write it:
//   l1        sum of |w| over the unit's rows of every producer weight
//   l2        sqrt of the sum of w^2 over the same rows
//   bn_gamma  sum of |gamma| over the batch norms of the group (network
//             slimming); a group without a batch norm falls back to l1
// Taylor importance (|w * dL/dw|) needs gradients through src/torch and is
// not implemented here. Scores are raw; the pass normalizes them per group
// (divides by the group mean) before a global ranking compares groups.
enum class ImportanceCriterion { kL1, kL2, kBnGamma };

const std::vector<std::string>& importance_criterion_names();  // "l1", "l2", "bn_gamma"
Expected<ImportanceCriterion> parse_importance_criterion(const std::string& name);

// One score per unit of `group` (size group.num_units). Fails for a producer
// weight that is not a dense f32 constant.
Expected<std::vector<double>> unit_importance(const analysis::ChannelGroup& group, ImportanceCriterion criterion);

}  // namespace compress::prune

// Channel-dependency analysis: which channel dimensions of which tensors must be pruned together.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "compress/ir/graph.h"
#include "compress/support/status.h"

namespace compress::analysis {

// Note [Channel groups]
// Structured pruning removes one index of a dimension ("channel") from a
// tensor; every tensor dimension that is coupled to it must lose the matching
// index too, or the graph stops being well typed (a residual add whose two
// operands lost different channels) or stops computing the same function.
//
// The analysis works on elements: one element per index of every axis of
// every value (activations and constants). Each op ties elements of its
// inputs and outputs that are the same channel (union-find):
//   conv2d      out[:, o] ~ weight[o] ~ bias[o]; x[:, c] ~ weight[:, c] when
//               groups == 1; with groups > 1 every channel of one conv group
//               (input and output side) is one unit, so whole conv groups are
//               removed (depthwise: one channel each)
//   linear      out[..., o] ~ weight[o] ~ bias[o]; x[..., i] ~ weight[:, i]
//   matmul      the contracted dims of both operands; M and N with the output
//   batch_norm  x[:, c] ~ out[:, c] ~ its four parameters[c]
//   elementwise, activations, add/sub/mul/div: same index of every operand
//               (broadcast size-1 dims are not tied)
//   concat/split/slice: output index ~ input index at its offset
//   reshape/flatten: a dim split into (outer, inner...) ties outer[k] to the
//               k-th block of the source dim (heads: [B,L,E] -> [B,L,H,hd]);
//               a merge of (outer, inner...) ties the k-th block of the
//               merged dim to outer[k] (flatten [N,C,H,W] -> [N,C*H*W]: channel
//               c is features c*H*W .. c*H*W+H*W-1); the inner dims, and dims
//               regrouped any other way, are blocked (not traceable). A 2-way
//               split that blocks a group is retried tying its inner dim
//               instead (channel shuffle; Note [Reshape splits] in the .cpp)
//   transpose/permute: dims follow the permutation
//   pooling     N and C pass through
//   scaled_dot_product_attention: batch/head dims of q, k, v, mask and out;
//               L of q and out; S of k, v and mask; Ev of v and out. The
//               q/k embed dim is blocked (the default scale depends on it).
// Then each union-find class is a *unit*: a set of (value, axis, index)
// removed together (one conv filter with its BN entries and the next
// layers' input columns; one attention head across q, k, v and the output
// projection's columns). A unit is a pruning candidate when it contains a row
// of a conv2d/linear constant weight (a producer) and prunable when none of
// its elements is blocked: graph inputs and outputs, ops the table above does
// not know (including quantized ops), normalized axes of layer_norm/softmax,
// reduced axes, untraceable reshapes, non-f32 or sparse/quantized constants.
// Units touching exactly the same (value, axis) pairs form a *group*: the
// interchangeable channels of one layer (or of one residual stage), among
// which an importance criterion chooses.

// One coupled tensor dimension of a group.
struct ChannelMember {
  enum class Role {
    kProducerWeight,   // conv2d/linear weight, axis 0 (its output channels)
    kProducerBias,     // conv2d/linear bias
    kBatchNormWeight,  // batch_norm gamma
    kBatchNormBias,    // batch_norm beta
    kBatchNormStat,    // running mean / var
    kConsumerWeight,   // conv2d/linear weight, axis 1 (input channels of the next layer)
    kConstant,         // any other constant (a positional embedding added to the stream)
    kActivation,       // a computed value
  };
  ir::Value* value = nullptr;
  int64_t axis = 0;
  Role role = Role::kActivation;
  // indices[u]: the indices of `axis` that unit u of the group owns, ascending.
  std::vector<std::vector<int64_t>> indices;
};

struct ChannelGroup {
  int64_t id = 0;
  // Names of the nodes whose filters/neurons are the group's units (conv2d /
  // linear nodes whose weight has a kProducerWeight member), graph order.
  std::vector<std::string> producers;
  int64_t num_units = 0;
  // Channels of one unit in the first producer's output (1 for a filter, the
  // head dim for an attention head, the group width for a grouped conv).
  int64_t unit_width = 1;
  std::vector<ChannelMember> members;
  bool prunable = true;
  std::string reason;  // why not, when !prunable

  // A short name for messages: "layer1.0.conv1" or "layer1.0.conv1 (+3 coupled)".
  std::string label() const;
};

struct ChannelAnalysis {
  std::vector<ChannelGroup> groups;  // ordered by their first producer in graph order
};

// Analyses `graph` (which must verify). Never fails on unknown ops: what it
// cannot trace is blocked and reported as a reason. Errors only for internal
// limits (a graph with more than 2^31 elements to track).
Expected<ChannelAnalysis> analyze_channel_groups(const ir::Graph& graph);

const char* role_name(ChannelMember::Role role);

}  // namespace compress::analysis

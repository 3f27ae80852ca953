// Shape-independent preparation of a graph for oneDNN: BN folding and grouping nodes into fused primitives.
#pragma once

#include <string>
#include <vector>

#include "compress/ir/graph.h"
#include "compress/support/status.h"

namespace compress::runtime::onednn {

// Note [Fusion groups]
// A group is the unit the plan builder turns into one primitive: a main node
// and the nodes fused after it as post-ops, in order. Every intermediate
// value of a group has exactly one use (the next member) and is not a graph
// output, so nothing outside the group ever needs it. `residual` is the
// other operand of a fused add (oneDNN's sum post-op). Groups are listed in
// the order of their last member, which is a valid execution order: a group
// reads only values that graph-earlier nodes produce, and the only values it
// can read from another group are that group's final outputs.
struct Group {
  ir::Node* main = nullptr;
  std::vector<ir::Node*> posts;
  ir::Value* residual = nullptr;
  // The last post when it is a quantize after an int8 layer's f32 output
  // (Note [Requantizing after f32 post-ops], emit_quantized.cpp).
  ir::Node* requantize = nullptr;
  ir::Value* output() const { return (posts.empty() ? main : posts.back())->output(0); }
  std::vector<const ir::Node*> nodes() const;
  std::vector<std::string> node_names() const;  // for plan reports
};

struct PreparedGraph {
  ir::Graph graph;            // the plan's own copy (constants shared with the source)
  std::vector<Group> groups;  // in execution order
  int folded_batch_norms = 0;
};

// Clones `source`, fills defaulted attributes, folds batch norms into the
// convolutions before them and forms fusion groups (both only when `fuse`).
Expected<PreparedGraph> prepare_graph(const ir::Graph& source, bool fuse);

// The eltwise ops oneDNN can apply as a post-op or a standalone primitive
// (emit_compute.cpp's table).
bool is_eltwise_op(ir::OpKind kind);
// Whether a quantize after this eltwise post may become the int8 layer's own
// output (Note [Requantizing after f32 post-ops]).
bool requantizes_after(ir::OpKind kind);

}  // namespace compress::runtime::onednn

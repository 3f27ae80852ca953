// The layers a prune pass may touch: conv2d / linear / matmul with constant f32 weights, chosen by name pattern.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "compress/ir/graph.h"
#include "compress/ir/sparse_layout.h"
#include "compress/support/status.h"

namespace compress::prune {

// Note [Canonical weight view]
// Every criterion works on one matrix shape: [out, in], one row per output
// channel and the row's inputs along the columns, as linear stores it.
//  - linear  weight [out, in]: as stored.
//  - conv2d  weight [O, C/groups, kh, kw]: rows O, columns (c, ky, kx)
//            flattened, i.e. the order of an im2col column; with groups > 1
//            row r only sees the input channels of group r / (O / groups).
//  - matmul  x @ W with a constant W [in, out]: the transpose of the stored
//            matrix (`transposed`).
// N:M groups therefore run along the input dimension for all three.
struct PrunableLayer {
  ir::Node* node = nullptr;
  ir::Value* weight = nullptr;  // the constant weight input
  int64_t rows = 0, cols = 0;   // canonical view
  int64_t groups = 1;           // conv2d groups (1 otherwise)
  bool transposed = false;      // matmul: canonical = stored^T
  const std::string& name() const { return node->name(); }
  int64_t params() const { return rows * cols; }
};

// Every conv2d / linear / matmul (weight as input 1) whose weight is a
// constant f32 tensor of rank 4 / 2 / 2, in graph order.
std::vector<PrunableLayer> prunable_layers(const ir::Graph& graph);

// Shell-style pattern on a node name: '*' any run of characters (dots
// included), '?' one character, [abc] / [a-z] / [!a] a class.
bool glob_match(const std::string& pattern, const std::string& name);

// Which layers a pass prunes and at which ratio.
struct LayerSelectionOptions {
  std::vector<ir::OpKind> ops = {ir::OpKind::conv2d, ir::OpKind::linear, ir::OpKind::matmul};
  int64_t min_params = 0;  // smaller layers are left dense
  double ratio = 0.5;      // default target
  // Per-layer ratios by pattern; the first pattern that matches wins.
  std::vector<std::pair<std::string, double>> overrides;
  std::vector<std::string> exclude;  // patterns of layers left dense
  std::string pass_name;             // prefixes messages
};

struct SelectedLayer {
  PrunableLayer layer;
  double ratio = 0.0;
  bool overridden = false;  // its ratio came from `overrides`
};

// The selected layers in graph order. A pattern (override or exclude) that
// matches no prunable layer is an error naming it and listing the layers, so
// a typo cannot silently leave a layer dense.
Expected<std::vector<SelectedLayer>> select_layers(const ir::Graph& graph, const LayerSelectionOptions& options);

// The canonical [rows, cols] matrix of a layer's weight (a sparse weight is
// densified first), row-major.
Expected<std::vector<float>> canonical_weights(const PrunableLayer& layer);

// Writes a canonical matrix back into the layer's weight constant with its
// logical shape kept, stored in `format` (kMask, kCsr, or kNM with n:m).
Status store_weights(const PrunableLayer& layer, const std::vector<float>& canonical, ir::SparseFormat format,
                     int64_t n = 0, int64_t m = 0);

}  // namespace compress::prune

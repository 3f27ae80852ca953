// Readable text form of a Graph (`ctk inspect --ir`), stable for structural tests.
#pragma once

#include <string>

#include "compress/ir/graph.h"

namespace compress::ir {

// Format (one item per line):
//   graph NAME(%x: f32[1,3,8,8]) -> (%fc)
//   const %conv.weight: f32[4,3,3,3]  {sparse=csr nnz=..., quant=...}
//   %conv = conv2d(%x, %conv.weight, %conv.bias) {dilation=[1,1], ...} : f32[1,4,8,8]  # conv
//   annotation prune.channel_importance of node 'conv': f32[4]
std::string print_graph(const Graph& graph);

}  // namespace compress::ir

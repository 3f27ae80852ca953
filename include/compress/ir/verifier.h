// Verifier: structural and type checks of a Graph, with messages naming the node.
#pragma once

#include "compress/ir/graph.h"

namespace compress::ir {

// Checks, in order: ownership of every referenced value (no dangling
// values), use lists match inputs, topological order / no cycles, every op
// known, arity, attribute kinds, inferred output types equal the stored ones,
// unique names, constants have tensors that match their type, quant params
// fit their tensors. Returns the first problem found.
Status verify(const Graph& graph);

}  // namespace compress::ir

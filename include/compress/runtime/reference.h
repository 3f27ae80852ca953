// The reference backend: every op of op set v1 with Eigen and plain loops; the ground truth.
#pragma once

#include <memory>
#include <vector>

#include "compress/runtime/backend.h"

namespace compress::runtime {

std::unique_ptr<Backend> make_reference_backend();

// Runs one node on concrete inputs (shapes taken from the tensors, not from
// the node's static types). Used by the reference plan and, node by node, as
// the fallback of the faster backends.
Expected<std::vector<ir::Tensor>> run_reference_node(const ir::Node& node, const std::vector<ir::Tensor>& inputs);

// Convenience: compile with the reference backend and run once.
Expected<std::vector<ir::Tensor>> run_reference(const ir::Graph& graph, const std::vector<ir::Tensor>& inputs);

}  // namespace compress::runtime

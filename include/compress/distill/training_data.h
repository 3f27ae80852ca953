// The checks every training pass makes on PassContext::training before it starts.
#pragma once

#include <string>

#include "compress/eval/dataset.h"
#include "compress/ir/graph.h"
#include "compress/pass/pass.h"

namespace compress::distill {

// The context's labelled training data, checked against the graph: present,
// labelled, and samples shaped like the graph's single input minus its batch
// dim. Errors start with `pass_name` and say what to change.
Expected<const eval::DataSource*> checked_training_data(const ir::Graph& graph, const pass::PassContext& context,
                                                        const std::string& pass_name);

}  // namespace compress::distill

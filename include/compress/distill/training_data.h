// The checks every training pass makes on PassContext::training, and its Trainer options.
#pragma once

#include <string>

#include "compress/eval/dataset.h"
#include "compress/ir/graph.h"
#include "compress/distill/training_loop.h"
#include "compress/pass/pass.h"
#include "compress/torch/trainer.h"

namespace compress::distill {

// The context's labelled training data, checked against the graph: present,
// labelled, and samples shaped like the graph's single input minus its batch
// dim. Errors start with `pass_name` and say what to change.
Expected<const eval::DataSource*> checked_training_data(const ir::Graph& graph, const pass::PassContext& context,
                                                        const std::string& pass_name);

// Trainer options for `loop`, labelled `label`, with the context's thread
// count and progress setting.
compress::torch::TrainerOptions trainer_options(const TrainingLoop& loop, const std::string& label,
                                                const pass::PassContext& context);

}  // namespace compress::distill

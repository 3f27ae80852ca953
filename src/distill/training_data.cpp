// Training-data checks shared by distill.finetune and distill.taylor_importance.
#include "compress/distill/training_data.h"

#include <algorithm>

namespace compress::distill {

Expected<const eval::DataSource*> checked_training_data(const ir::Graph& graph, const pass::PassContext& context,
                                                        const std::string& pass_name) {
  if (context.training == nullptr) {
    return invalid_argument("{} needs labelled training data (none was given; add a recipe 'training' dataset or "
                            "pass --finetune-data)",
                            pass_name);
  }
  const eval::DataSource& data = *context.training;
  if (!data.has_labels()) return invalid_argument("{}: the training data {} has no labels", pass_name, data.describe());
  if (graph.inputs().size() != 1) {
    return unsupported("{}: the graph has {} inputs; training supports one input", pass_name, graph.inputs().size());
  }
  const ir::Shape& in = graph.inputs()[0]->shape();
  const ir::Shape& sample = data.sample_shape();
  if (in.size() != sample.size() + 1 || !std::equal(sample.begin(), sample.end(), in.begin() + 1)) {
    return invalid_argument("{}: training samples of {} have shape {}, the graph input '{}' is {}", pass_name,
                            data.describe(), ir::shape_to_string(sample), graph.inputs()[0]->name(),
                            ir::shape_to_string(in));
  }
  return &data;
}

compress::torch::TrainerOptions trainer_options(const TrainingLoop& o, const std::string& label,
                                                const pass::PassContext& context) {
  compress::torch::TrainerOptions t;
  t.label = label;
  t.epochs = o.epochs;
  t.steps = o.steps;
  t.samples = o.samples;
  t.batch = o.batch;
  t.shuffle = o.shuffle;
  t.threads = context.threads;
  t.progress = context.progress;
  t.optimizer.kind = o.optimizer == "sgd" ? compress::torch::OptimizerKind::kSgd : compress::torch::OptimizerKind::kAdam;
  t.optimizer.lr = o.lr;
  t.optimizer.weight_decay = o.weight_decay;
  if (o.optimizer == "sgd") t.optimizer.momentum = o.momentum;
  t.schedule.kind =
      o.lr_schedule == "cosine" ? compress::torch::ScheduleKind::kCosine : compress::torch::ScheduleKind::kConstant;
  return t;
}

}  // namespace compress::distill

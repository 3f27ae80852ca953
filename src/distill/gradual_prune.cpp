#include "gradual_prune.h"

#include <ATen/ATen.h>
#include <torch/utils.h>

#include <set>

#include "compress/ir/sparse_layout.h"
#include "compress/prune/prunable_layers.h"
#include "compress/prune/schedule.h"
#include "compress/support/logging.h"

namespace compress::distill {

Expected<GradualPruner> GradualPruner::create(compress::torch::TrainableModel& model, const PruneSchedule& schedule,
                                              int64_t total_steps) {
  GradualPruner pruner;
  pruner.schedule_ = schedule;
  pruner.end_ = schedule.end_step >= 0 ? schedule.end_step : (total_steps * 3) / 4;
  if (pruner.end_ < schedule.start_step) {
    return invalid_argument("distill.finetune: prune_schedule ends at step {}, before its start {}", pruner.end_,
                            schedule.start_step);
  }
  if (pruner.end_ >= total_steps) {
    return invalid_argument(
        "distill.finetune: prune_schedule ends at step {}, but the run has only {} steps (steps count from 0), so the "
        "target sparsity {} would never be reached",
        pruner.end_, total_steps, schedule.final_sparsity);
  }
  const auto params = model.named_parameters();
  std::set<std::string> seen;
  for (const prune::PrunableLayer& layer : prune::prunable_layers(model.graph())) {
    const std::string& name = layer.weight->name();
    if (!seen.insert(name).second) continue;  // a weight shared by two nodes is pruned once
    const at::Tensor* param = params.find(name);
    if (param == nullptr) continue;  // not trainable (cannot happen for f32 constants)
    pruner.weights_.push_back({name, *param, at::Tensor()});
  }
  if (pruner.weights_.empty()) {
    return invalid_argument("distill.finetune: prune_schedule is set but the graph has no conv2d/linear/matmul with a "
                            "constant f32 weight to prune");
  }
  return pruner;
}

Status GradualPruner::prune_if_due(int64_t step) {
  const int64_t start = schedule_.start_step;
  const bool event =
      step >= start && step <= end_ && ((step - start) % schedule_.frequency == 0 || step == end_);
  if (event) {
    target_ = prune::cubic_sparsity(schedule_.initial_sparsity, schedule_.final_sparsity, step - start, end_ - start);
    ::torch::NoGradGuard no_grad;
    for (Weight& w : weights_) {
      at::Tensor data = w.param.detach();
      if (!data.is_contiguous() || data.scalar_type() != at::kFloat) {
        return make_error(StatusCode::kInternal, "distill.finetune: parameter '{}' is not contiguous f32", w.name);
      }
      if (prune::magnitude_prune_in_place(data.data_ptr<float>(), data.numel(), target_) < 0) {
        return invalid_argument("distill.finetune: weight '{}' holds a NaN or infinity at step {}; lower lr", w.name,
                                step + 1);
      }
      w.mask = data.ne(0).to(at::kFloat);
    }
    ++events_;
    log_debug("distill.finetune: step {}: pruned to {:.4f}", step + 1, target_);
  }
  return Status::ok();
}

void GradualPruner::mask_gradients() {
  ::torch::NoGradGuard no_grad;
  for (Weight& w : weights_) {
    if (w.mask.defined() && w.param.grad().defined()) w.param.mutable_grad().mul_(w.mask);
  }
}

void GradualPruner::reapply_masks() {
  ::torch::NoGradGuard no_grad;
  for (Weight& w : weights_) {
    if (w.mask.defined()) w.param.mul_(w.mask);
  }
}

Status GradualPruner::finish(ir::Graph& graph) const {
  std::set<std::string> pruned;
  for (const Weight& w : weights_) pruned.insert(w.name);
  for (ir::Value* value : graph.constants()) {
    if (pruned.count(value->name()) == 0) continue;
    const ir::Tensor& old = value->constant();
    // CSR, N:M and block layouts were rebuilt from the values by write_back;
    // a dense or mask weight gets the mask of its current zeros.
    if (old.is_sparse() && old.sparse_layout()->format != ir::SparseFormat::kMask) continue;
    COMPRESS_ASSIGN_OR_RETURN(ir::Tensor dense, old.to_dense());
    COMPRESS_ASSIGN_OR_RETURN(ir::Tensor masked, ir::to_mask_layout(dense));
    value->set_constant(std::move(masked));
  }
  return Status::ok();
}

}  // namespace compress::distill

// distill.finetune: cross-entropy plus logit distillation through torch::Trainer, with optional gradual pruning.
#include "compress/distill/finetune.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <optional>
#include <vector>

#include "compress/distill/kd_loss.h"
#include "compress/distill/kd_pass.h"
#include "compress/distill/taylor_importance.h"
#include "compress/eval/dataset.h"
#include "compress/support/logging.h"
#include "compress/torch/trainable_model.h"
#include "compress/torch/trainer.h"
#include "gradual_prune.h"
#include "compress/distill/training_data.h"

namespace compress::distill {
namespace {

// The fraction of exact zeros of every sparse weight, per node, for the report.
Status record_sparsity(const ir::Graph& graph, pass::PassResult& result) {
  for (const ir::Node* node : graph.nodes()) {
    for (const ir::Value* in : node->inputs()) {
      if (!in->is_constant() || !in->constant().is_sparse()) continue;
      COMPRESS_ASSIGN_OR_RETURN(ir::Tensor dense, in->constant().to_dense());
      const float* v = dense.data<float>();
      int64_t zeros = 0;
      for (int64_t i = 0; i < dense.numel(); ++i) zeros += v[i] == 0.0f ? 1 : 0;
      result.layers[node->name()]["sparsity"] = static_cast<double>(zeros) / static_cast<double>(dense.numel());
    }
  }
  return Status::ok();
}

}  // namespace

Expected<pass::PassResult> FinetunePass::run(ir::Graph& graph, pass::PassContext& context) {
  const Options& o = options_;
  COMPRESS_ASSIGN_OR_RETURN(const eval::DataSource* training, checked_training_data(graph, context, "distill.finetune"));
  const eval::DataSource& data = *training;
  const bool have_teacher = context.reference_model != nullptr;
  const double alpha = o.alpha.value_or(have_teacher ? 0.5 : 0.0);
  if (alpha > 0 && !have_teacher) {
    return invalid_argument("distill.finetune: alpha = {} needs a teacher (the reference model), and there is none",
                            alpha);
  }
  const compress::torch::Trainer trainer(trainer_options(o.loop, "distill.finetune", context));
  COMPRESS_ASSIGN_OR_RETURN(const compress::torch::TrainPlan plan, trainer.plan(data));

  COMPRESS_ASSIGN_OR_RETURN(std::shared_ptr<compress::torch::TrainableModel> student,
                            compress::torch::TrainableModel::create(graph));
  // Loss (1 - alpha) * ce + alpha * kd (Note [Fine-tuning pass]); ce is
  // computed and reported even at alpha 1.
  compress::torch::LossTerms terms = {std::make_shared<compress::torch::CrossEntropyTerm>(1.0 - alpha)};
  if (alpha > 0) {
    COMPRESS_ASSIGN_OR_RETURN(std::shared_ptr<compress::torch::TrainableModel> teacher,
                              compress::torch::TrainableModel::create(*context.reference_model));
    teacher->eval();
    terms.push_back(std::make_shared<LogitDistillationTerm>(teacher, o.temperature, alpha));
  }
  if (student->parameters().empty()) {
    log_warning("distill.finetune: the graph has no trainable f32 parameters; nothing to fine-tune");
    return pass::PassResult{};
  }
  std::optional<GradualPruner> pruner;
  compress::torch::TrainerHooks hooks;
  if (o.prune_schedule.final_sparsity > 0) {
    COMPRESS_ASSIGN_OR_RETURN(pruner, GradualPruner::create(*student, o.prune_schedule, plan.total_steps));
    log_info("distill.finetune: gradual pruning to {} (cubic from {}) over steps {}..{}, every {} steps",
             o.prune_schedule.final_sparsity, o.prune_schedule.initial_sparsity, o.prune_schedule.start_step + 1,
             pruner->end_step() + 1, o.prune_schedule.frequency);
    hooks.before_forward = [&](const compress::torch::StepContext& step) { return pruner->prune_if_due(step.step); };
    hooks.after_backward = [&](const compress::torch::StepContext&) {
      pruner->mask_gradients();
      return Status::ok();
    };
    hooks.after_step = [&](const compress::torch::StepContext&) {
      pruner->reapply_masks();
      return Status::ok();
    };
  }

  log_info("distill.finetune: {} samples of {}, {} steps ({} epochs of {}), batch {}, {} lr {} ({}), alpha {}, T {}",
           plan.samples, data.describe(), plan.total_steps, plan.epochs, plan.steps_per_epoch, plan.batch,
           o.loop.optimizer, o.loop.lr, o.loop.lr_schedule, alpha, o.temperature);
  // The shuffle and LibTorch's seed come from the context's engine (Note
  // [Trainer determinism]), so the recipe's seed decides them.
  COMPRESS_ASSIGN_OR_RETURN(const compress::torch::TrainResult trained,
                            trainer.fit(*student, data, terms, hooks, context.rng));

  // Batch norm leaves training mode; the running statistics and trained
  // values go back into the graph (sparse layouts keep their pattern).
  student->eval();
  COMPRESS_RETURN_IF_ERROR(student->write_back());
  graph = std::move(student->graph());
  if (pruner) {
    COMPRESS_RETURN_IF_ERROR(pruner->finish(graph));
  }

  pass::PassResult result;
  result.changed = trained.steps > 0;
  COMPRESS_RETURN_IF_ERROR(record_sparsity(graph, result));
  const compress::torch::EpochRecord& last = trained.epochs.back();
  result.counters["final_loss"] = last.loss;
  result.counters["final_ce"] = last.terms[0];
  result.counters["final_kd"] = terms.size() > 1 ? last.terms[1] : 0.0;
  result.counters["steps"] = static_cast<double>(trained.steps);
  result.counters["epochs"] = static_cast<double>(plan.epochs);
  result.counters["samples"] = static_cast<double>(plan.samples);
  result.counters["alpha"] = alpha;
  result.counters["temperature"] = o.temperature;
  result.counters["lr"] = o.loop.lr;
  if (pruner) {
    result.counters["prune_events"] = static_cast<double>(pruner->events());
    result.counters["prune_sparsity"] = pruner->current_target();
  }
  return result;
}

Expected<FinetunePass::Options> FinetunePass::parse_options(const pass::PassOptions& options) {
  Options o;
  COMPRESS_ASSIGN_OR_RETURN(o.loop, parse_training_loop(options, o.loop));
  if (options.has("alpha")) {
    COMPRESS_ASSIGN_OR_RETURN(double alpha, options.number("alpha", 0.0, pass::Range::closed(0, 1)));
    o.alpha = alpha;
  }
  COMPRESS_ASSIGN_OR_RETURN(o.temperature, options.number("temperature", o.temperature, pass::Range::positive()));
  COMPRESS_ASSIGN_OR_RETURN(auto schedule, options.number_map("prune_schedule", pass::Range::at_least(0)));
  bool has_sparsity = false;
  for (const auto& [key, value] : schedule) {
    PruneSchedule& p = o.prune_schedule;
    const bool whole = value == std::floor(value) && value < 1e15;
    if (key == "sparsity" || key == "initial") {
      if (!(value < 1.0)) {
        return invalid_argument("{}: '{}' must be in [0, 1), got {}", options.where("prune_schedule"), key, value);
      }
      (key == "sparsity" ? p.final_sparsity : p.initial_sparsity) = value;
      has_sparsity = has_sparsity || key == "sparsity";
    } else if (key == "start" || key == "end" || key == "frequency") {
      if (!whole || (key == "frequency" && value < 1)) {
        return invalid_argument("{}: '{}' must be a whole number{}, got {}", options.where("prune_schedule"), key,
                                key == "frequency" ? " >= 1" : "", value);
      }
      (key == "start" ? p.start_step : key == "end" ? p.end_step : p.frequency) = static_cast<int64_t>(value);
    } else {
      return invalid_argument("{}: unknown key '{}' (known: sparsity, initial, start, end, frequency)",
                              options.where("prune_schedule"), key);
    }
  }
  if (!schedule.empty() && !has_sparsity) {
    return invalid_argument("{}: 'sparsity' (the final target) is required", options.where("prune_schedule"));
  }
  if (o.prune_schedule.initial_sparsity > o.prune_schedule.final_sparsity) {
    return invalid_argument("{}: 'initial' {} is above the final 'sparsity' {}", options.where("prune_schedule"),
                            o.prune_schedule.initial_sparsity, o.prune_schedule.final_sparsity);
  }
  return o;
}

Status register_distill_passes(pass::PassRegistry& registry) {
  COMPRESS_RETURN_IF_ERROR(registry.add<FinetunePass>("distill.finetune"));
  COMPRESS_RETURN_IF_ERROR(registry.add<KdPass>("distill.kd"));
  return registry.add<TaylorImportancePass>("distill.taylor_importance");
}

}  // namespace compress::distill

// distill.finetune: a minibatch training loop over the trainable executor.
#include "compress/distill/finetune.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/optim.h>
#include <torch/utils.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <vector>

#include "compress/distill/kd_loss.h"
#include "compress/distill/taylor_importance.h"
#include "gradual_prune.h"
#include "compress/eval/dataset.h"
#include "compress/support/logging.h"
#include "compress/support/progress.h"
#include "compress/torch/trainable_model.h"
#include "training_data.h"

namespace compress::distill {
namespace {

constexpr double kPi = 3.14159265358979323846;

// at::set_num_threads is process-wide; the pass restores what it found.
class TorchThreadsGuard {
 public:
  explicit TorchThreadsGuard(int threads) : saved_(at::get_num_threads()) {
    if (threads > 0) at::set_num_threads(threads);
  }
  ~TorchThreadsGuard() { at::set_num_threads(saved_); }

 private:
  int saved_;
};

// Fisher-Yates with the context's engine, written out so the order does not
// depend on the standard library's std::shuffle / distributions.
void shuffle(std::vector<int64_t>& order, std::mt19937_64& rng) {
  for (size_t i = order.size(); i > 1; --i) {
    const size_t j = static_cast<size_t>(rng() % i);
    std::swap(order[i - 1], order[j]);
  }
}

// Gathers samples order[begin, end) into one [count, sample...] batch.
// Note [Fine-tuning data]
// Samples are read one at a time through DataSource::batch in the shuffled
// order, so memory stays at one batch whatever the dataset size; for
// in-memory and IDX sources a read is a copy of one image.
Status gather(const eval::DataSource& source, const std::vector<int64_t>& order, int64_t begin, int64_t end,
              at::Tensor* images, at::Tensor* labels) {
  const int64_t count = end - begin;
  std::vector<int64_t> shape{count};
  for (int64_t d : source.sample_shape()) shape.push_back(d);
  *images = at::empty(shape, at::kFloat);
  *labels = at::empty({count}, at::kLong);
  const int64_t sample_numel = images->numel() / std::max<int64_t>(count, 1);
  float* dst = images->data_ptr<float>();
  int64_t* label_dst = labels->data_ptr<int64_t>();
  for (int64_t k = 0; k < count; ++k) {
    const int64_t index = order[static_cast<size_t>(begin + k)];
    COMPRESS_ASSIGN_OR_RETURN(eval::Batch one, source.batch(index, 1));
    if (one.inputs.dtype() != ir::DType::kF32 || one.inputs.is_sparse() || one.inputs.numel() != sample_numel) {
      return invalid_argument("distill.finetune: training sample {} of {} is not a dense f32 tensor of {} values",
                              index, source.describe(), sample_numel);
    }
    if (one.labels.size() != 1) {
      return invalid_argument("distill.finetune: training sample {} of {} has no label", index, source.describe());
    }
    std::memcpy(dst + k * sample_numel, one.inputs.data<float>(), sizeof(float) * static_cast<size_t>(sample_numel));
    label_dst[k] = one.labels[0];
  }
  return Status::ok();
}

std::unique_ptr<::torch::optim::Optimizer> make_optimizer(const FinetunePass::Options& o,
                                                          const std::vector<at::Tensor>& params) {
  if (o.optimizer == "sgd") {
    return std::make_unique<::torch::optim::SGD>(
        params, ::torch::optim::SGDOptions(o.lr).momentum(o.momentum).weight_decay(o.weight_decay));
  }
  return std::make_unique<::torch::optim::Adam>(params,
                                               ::torch::optim::AdamOptions(o.lr).weight_decay(o.weight_decay));
}

void set_lr(::torch::optim::Optimizer& optimizer, double lr) {
  for (auto& group : optimizer.param_groups()) group.options().set_lr(lr);
}

// Logits of a one-output, one-input graph: checks the rank once.
Expected<at::Tensor> logits_of(compress::torch::TrainableModel& model, const at::Tensor& images, const char* who) {
  COMPRESS_ASSIGN_OR_RETURN(std::vector<at::Tensor> outs, model.try_forward({images}));
  if (outs.empty() || outs[0].dim() != 2) {
    return invalid_argument("distill.finetune: the {}'s first output must be logits [batch, classes], got rank {}",
                            who, outs.empty() ? 0 : outs[0].dim());
  }
  return outs[0];
}

struct EpochLoss {
  double total = 0, ce = 0, kd = 0;
  int64_t steps = 0;
};

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
  const int64_t n = o.samples > 0 ? std::min(o.samples, data.size()) : data.size();
  if (n < 1) return invalid_argument("distill.finetune: the training data {} is empty", data.describe());
  const int64_t batch = std::min(o.batch, n);
  // Full batches only (a batch of one breaks batch-norm statistics); the
  // shuffled remainder is seen in other epochs.
  const int64_t steps_per_epoch = n / batch;
  const int64_t total_steps = o.steps > 0 ? o.steps : o.epochs * steps_per_epoch;
  const int64_t epochs = (total_steps + steps_per_epoch - 1) / steps_per_epoch;

  TorchThreadsGuard threads(context.threads);
  ::torch::manual_seed(context.rng());

  COMPRESS_ASSIGN_OR_RETURN(std::shared_ptr<compress::torch::TrainableModel> student,
                            compress::torch::TrainableModel::create(graph));
  std::shared_ptr<compress::torch::TrainableModel> teacher;
  if (alpha > 0) {
    COMPRESS_ASSIGN_OR_RETURN(teacher, compress::torch::TrainableModel::create(*context.reference_model));
    teacher->eval();
  }
  const std::vector<at::Tensor> params = student->parameters();
  if (params.empty()) {
    log_warning("distill.finetune: the graph has no trainable f32 parameters; nothing to fine-tune");
    return pass::PassResult{};
  }
  std::unique_ptr<::torch::optim::Optimizer> optimizer = make_optimizer(o, params);
  std::optional<GradualPruner> pruner;
  if (o.prune_schedule.final_sparsity > 0) {
    COMPRESS_ASSIGN_OR_RETURN(pruner, GradualPruner::create(*student, o.prune_schedule, total_steps));
    log_info("distill.finetune: gradual pruning to {} (cubic from {}) over steps {}..{}, every {} steps",
             o.prune_schedule.final_sparsity, o.prune_schedule.initial_sparsity, o.prune_schedule.start_step + 1,
             pruner->end_step() + 1, o.prune_schedule.frequency);
  }

  log_info("distill.finetune: {} samples of {}, {} steps ({} epochs of {}), batch {}, {} lr {} ({}), alpha {}, T {}",
           n, data.describe(), total_steps, epochs, steps_per_epoch, batch, o.optimizer, o.lr, o.lr_schedule, alpha,
           o.temperature);
  std::vector<int64_t> order(static_cast<size_t>(data.size()));
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int64_t>(i);
  order.resize(static_cast<size_t>(n));

  EpochLoss last;
  int64_t step = 0;
  try {
    for (int64_t epoch = 0; epoch < epochs; ++epoch) {
      shuffle(order, context.rng);
      student->train();
      EpochLoss sum;
      const int64_t epoch_steps = std::min(steps_per_epoch, total_steps - step);
      ProgressReporter progress(fmt::format("distill.finetune epoch {}/{}", epoch + 1, epochs), epoch_steps,
                                context.progress ? ProgressReporter::Mode::kAuto : ProgressReporter::Mode::kOff);
      for (int64_t s = 0; s < epoch_steps; ++s, ++step) {
        at::Tensor images, labels;
        COMPRESS_RETURN_IF_ERROR(gather(data, order, s * batch, (s + 1) * batch, &images, &labels));
        if (o.lr_schedule == "cosine") {
          set_lr(*optimizer, o.lr * 0.5 * (1.0 + std::cos(kPi * static_cast<double>(step) /
                                                          static_cast<double>(total_steps))));
        }
        if (pruner) {
          COMPRESS_RETURN_IF_ERROR(pruner->prune_if_due(step));
        }
        at::Tensor teacher_logits;
        if (teacher) {
          ::torch::NoGradGuard no_grad;
          COMPRESS_ASSIGN_OR_RETURN(teacher_logits, logits_of(*teacher, images, "teacher"));
        }
        COMPRESS_ASSIGN_OR_RETURN(at::Tensor logits, logits_of(*student, images, "graph"));
        const int64_t classes = logits.size(1);
        if (teacher_logits.defined() && teacher_logits.sizes() != logits.sizes()) {
          return invalid_argument("distill.finetune: the teacher's logits {} differ in shape from the graph's {}",
                                  fmt::join(teacher_logits.sizes(), "x"), fmt::join(logits.sizes(), "x"));
        }
        const int64_t max_label = labels.max().item<int64_t>();
        const int64_t min_label = labels.min().item<int64_t>();
        if (min_label < 0 || max_label >= classes) {
          return invalid_argument("distill.finetune: label {} of {} is outside the graph's {} classes",
                                  min_label < 0 ? min_label : max_label, data.describe(), classes);
        }
        DistillLoss loss = distillation_loss(logits, teacher_logits, labels, alpha, o.temperature);
        optimizer->zero_grad();
        loss.total.backward();
        if (pruner) pruner->mask_gradients();
        optimizer->step();
        if (pruner) pruner->reapply_masks();
        const double total = loss.total.item<double>();
        if (!std::isfinite(total)) {
          return invalid_argument("distill.finetune: the loss diverged to {} at step {} (lower lr = {})", total,
                                  step + 1, o.lr);
        }
        sum.total += total;
        sum.ce += loss.ce.item<double>();
        sum.kd += loss.kd.item<double>();
        ++sum.steps;
        progress.advance();
      }
      progress.finish();
      const double d = static_cast<double>(std::max<int64_t>(sum.steps, 1));
      last = {sum.total / d, sum.ce / d, sum.kd / d, sum.steps};
      log_info("distill.finetune: epoch {}/{}: loss {:.4f} (ce {:.4f}, kd {:.4f}) over {} steps", epoch + 1, epochs,
               last.total, last.ce, last.kd, last.steps);
    }
  } catch (const Error& e) {
    return e.status().with_context("distill.finetune");
  } catch (const std::exception& e) {
    return make_error(StatusCode::kInternal, "distill.finetune: LibTorch failed during training: {}", e.what());
  }

  // Batch norm leaves training mode; the running statistics and trained
  // values go back into the graph (sparse layouts keep their pattern).
  student->eval();
  COMPRESS_RETURN_IF_ERROR(student->write_back());
  graph = std::move(student->graph());
  if (pruner) {
    COMPRESS_RETURN_IF_ERROR(pruner->finish(graph));
  }

  pass::PassResult result;
  result.changed = step > 0;
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
  result.counters["final_loss"] = last.total;
  result.counters["final_ce"] = last.ce;
  result.counters["final_kd"] = last.kd;
  result.counters["steps"] = static_cast<double>(step);
  result.counters["epochs"] = static_cast<double>(epochs);
  result.counters["samples"] = static_cast<double>(n);
  result.counters["alpha"] = alpha;
  result.counters["temperature"] = o.temperature;
  result.counters["lr"] = o.lr;
  if (pruner) {
    result.counters["prune_events"] = static_cast<double>(pruner->events());
    result.counters["prune_sparsity"] = pruner->current_target();
  }
  return result;
}

Expected<FinetunePass::Options> FinetunePass::parse_options(const pass::PassOptions& options) {
  Options o;
  COMPRESS_ASSIGN_OR_RETURN(o.epochs, options.integer("epochs", o.epochs, 1, 1 << 20));
  COMPRESS_ASSIGN_OR_RETURN(o.steps, options.integer("steps", o.steps, 1, int64_t{1} << 40));
  if (options.has("epochs") && options.has("steps")) {
    return invalid_argument("{}: give either 'epochs' or 'steps', not both", options.where("steps"));
  }
  COMPRESS_ASSIGN_OR_RETURN(o.samples, options.integer("samples", o.samples, 1, int64_t{1} << 40));
  COMPRESS_ASSIGN_OR_RETURN(o.batch, options.integer("batch", o.batch, 1, 1 << 16));
  COMPRESS_ASSIGN_OR_RETURN(o.optimizer, options.string("optimizer", o.optimizer, {"adam", "sgd"}));
  COMPRESS_ASSIGN_OR_RETURN(o.lr, options.number("lr", o.lr, pass::Range::positive()));
  COMPRESS_ASSIGN_OR_RETURN(o.lr_schedule, options.string("lr_schedule", o.lr_schedule, {"constant", "cosine"}));
  COMPRESS_ASSIGN_OR_RETURN(o.momentum, options.number("momentum", o.momentum, pass::Range::half_open(0, 1)));
  if (options.has("momentum") && o.optimizer != "sgd") {
    return invalid_argument("{}: momentum applies to optimizer 'sgd' only", options.where("momentum"));
  }
  COMPRESS_ASSIGN_OR_RETURN(o.weight_decay, options.number("weight_decay", o.weight_decay, pass::Range::at_least(0)));
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
  return registry.add<TaylorImportancePass>("distill.taylor_importance");
}

}  // namespace compress::distill

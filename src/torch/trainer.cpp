// The Trainer (see trainer.h): batching, optimizer, schedule, loss terms and hooks around TrainableModel.
#include "compress/torch/trainer.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <fmt/format.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/optim.h>
#include <torch/utils.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <numeric>

#include "compress/eval/dataset.h"
#include "compress/support/logging.h"
#include "compress/support/progress.h"

namespace compress::torch {
namespace {

constexpr double kPi = 3.14159265358979323846;

// at::set_num_threads is process-wide; the run restores what it found.
class TorchThreadsGuard {
 public:
  explicit TorchThreadsGuard(int threads) : saved_(at::get_num_threads()) {
    if (threads > 0) at::set_num_threads(threads);
  }
  ~TorchThreadsGuard() { at::set_num_threads(saved_); }
  TorchThreadsGuard(const TorchThreadsGuard&) = delete;
  TorchThreadsGuard& operator=(const TorchThreadsGuard&) = delete;

 private:
  int saved_;
};

// fit() leaves the model's taps and train/eval mode as it found them.
class ModelStateGuard {
 public:
  explicit ModelStateGuard(TrainableModel& model)
      : model_(model), taps_(model.taps()), training_(model.is_training()) {}
  ~ModelStateGuard() {
    model_.train(training_);
    // The saved names resolved before, so they resolve again.
    (void)model_.set_taps(taps_);
  }
  ModelStateGuard(const ModelStateGuard&) = delete;
  ModelStateGuard& operator=(const ModelStateGuard&) = delete;

 private:
  TrainableModel& model_;
  std::vector<std::string> taps_;
  bool training_;
};

// Fisher-Yates with the run's engine (Note [Trainer determinism]).
void shuffle(std::vector<int64_t>& order, std::mt19937_64& rng) {
  for (size_t i = order.size(); i > 1; --i) {
    const size_t j = static_cast<size_t>(rng() % i);
    std::swap(order[i - 1], order[j]);
  }
}

// Note [Training batches]
// A batch is gathered through DataSource::batch in the epoch's order, one
// call per run of consecutive indices (so one call per batch when not
// shuffled, one per sample when shuffled): memory stays at one batch
// whatever the dataset size, and for in-memory and IDX sources a read is a
// copy.
class BatchReader {
 public:
  BatchReader(const eval::DataSource& data, const std::string& label) : data_(data), label_(label) {
    for (int64_t d : data.sample_shape()) sample_numel_ *= d;
  }

  Status read(const std::vector<int64_t>& indices, at::Tensor* inputs, at::Tensor* labels) const {
    const auto count = static_cast<int64_t>(indices.size());
    *labels = data_.has_labels() ? at::empty({count}, at::kLong) : at::Tensor();
    ir::DType dtype = ir::DType::kF32;
    for (int64_t begin = 0; begin < count;) {
      int64_t end = begin + 1;
      while (end < count && indices[static_cast<size_t>(end)] == indices[static_cast<size_t>(end - 1)] + 1) ++end;
      const int64_t first = indices[static_cast<size_t>(begin)];
      const int64_t run = end - begin;
      COMPRESS_ASSIGN_OR_RETURN(eval::Batch chunk, data_.batch(first, run));
      if (begin == 0) {
        // The batch takes the dtype of its first sample; the rest must match it.
        dtype = chunk.inputs.dtype();
        COMPRESS_ASSIGN_OR_RETURN(at::ScalarType type, scalar_type_of(dtype, first));
        std::vector<int64_t> shape{count};
        for (int64_t d : data_.sample_shape()) shape.push_back(d);
        *inputs = at::empty(shape, type);
      }
      const auto element = static_cast<size_t>(inputs->element_size());
      if (chunk.inputs.dtype() != dtype || chunk.inputs.is_sparse() || chunk.inputs.numel() != run * sample_numel_ ||
          chunk.inputs.nbytes() != static_cast<size_t>(run * sample_numel_) * element) {
        return invalid_argument("{}: training samples {}..{} of {} are not a dense {} tensor of {} values each",
                                label_, first, first + run - 1, data_.describe(), ir::dtype_name(dtype),
                                sample_numel_);
      }
      std::memcpy(static_cast<char*>(inputs->data_ptr()) + static_cast<size_t>(begin * sample_numel_) * element,
                  chunk.inputs.raw_data(), chunk.inputs.nbytes());
      if (labels->defined()) {
        if (static_cast<int64_t>(chunk.labels.size()) != run) {
          return invalid_argument("{}: training samples {}..{} of {} have {} labels, not {}", label_, first,
                                  first + run - 1, data_.describe(), chunk.labels.size(), run);
        }
        std::memcpy(labels->data_ptr<int64_t>() + begin, chunk.labels.data(), sizeof(int64_t) * chunk.labels.size());
      }
      begin = end;
    }
    return Status::ok();
  }

 private:
  Expected<at::ScalarType> scalar_type_of(ir::DType dtype, int64_t sample) const {
    switch (dtype) {
      case ir::DType::kF32: return at::kFloat;
      case ir::DType::kI64: return at::kLong;
      case ir::DType::kI32: return at::kInt;
      default:
        return invalid_argument("{}: training sample {} of {} is {}; training reads f32, i64 or i32 samples", label_,
                                sample, data_.describe(), ir::dtype_name(dtype));
    }
  }

  const eval::DataSource& data_;
  const std::string& label_;
  int64_t sample_numel_ = 1;
};

Status check_options(const TrainerOptions& o) {
  const OptimizerOptions& opt = o.optimizer;
  const LrSchedule& s = o.schedule;
  const std::string& l = o.label;
  if (o.batch < 1) return invalid_argument("{}: batch must be >= 1, got {}", l, o.batch);
  if (o.steps < 0) return invalid_argument("{}: steps must be >= 0 (0: use epochs), got {}", l, o.steps);
  if (o.steps == 0 && o.epochs < 1) return invalid_argument("{}: epochs must be >= 1, got {}", l, o.epochs);
  if (o.samples == 0 || o.samples < -1) {
    return invalid_argument("{}: samples must be >= 1 (or -1 for all), got {}", l, o.samples);
  }
  if (opt.kind != OptimizerKind::kNone && !(opt.lr > 0 && std::isfinite(opt.lr))) {
    return invalid_argument("{}: lr must be a positive number, got {}", l, opt.lr);
  }
  if (!(opt.weight_decay >= 0)) return invalid_argument("{}: weight_decay must be >= 0, got {}", l, opt.weight_decay);
  if (!(opt.momentum >= 0)) return invalid_argument("{}: momentum must be >= 0, got {}", l, opt.momentum);
  if (opt.nesterov && !(opt.momentum > 0)) return invalid_argument("{}: nesterov needs momentum > 0", l);
  if (!(opt.beta1 >= 0 && opt.beta1 < 1) || !(opt.beta2 >= 0 && opt.beta2 < 1)) {
    return invalid_argument("{}: betas must be in [0, 1), got ({}, {})", l, opt.beta1, opt.beta2);
  }
  if (!(opt.eps >= 0)) return invalid_argument("{}: eps must be >= 0, got {}", l, opt.eps);
  if (s.warmup_steps < 0) return invalid_argument("{}: warmup_steps must be >= 0, got {}", l, s.warmup_steps);
  if (s.kind == ScheduleKind::kStep && s.step_size < 1) {
    return invalid_argument("{}: the step schedule's step_size must be >= 1, got {}", l, s.step_size);
  }
  if (s.kind == ScheduleKind::kStep && !(s.gamma > 0)) {
    return invalid_argument("{}: the step schedule's gamma must be > 0, got {}", l, s.gamma);
  }
  if (!(o.clip_grad_norm >= 0)) {
    return invalid_argument("{}: clip_grad_norm must be >= 0 (0: off), got {}", l, o.clip_grad_norm);
  }
  return Status::ok();
}

// One optimizer parameter group per learning-rate multiplier of the model
// (TrainableModel::parameter_groups); each group's lr is set per step to the
// schedule's rate times its multiplier.
std::unique_ptr<::torch::optim::Optimizer> make_optimizer(const OptimizerOptions& o,
                                                          const std::vector<TrainableModel::ParameterGroup>& groups) {
  namespace optim = ::torch::optim;
  auto make_groups = [&](auto options) {
    std::vector<optim::OptimizerParamGroup> out;
    for (const auto& g : groups) {
      auto group_options = std::make_unique<decltype(options)>(options);
      group_options->lr(o.lr * g.lr_scale);
      out.emplace_back(g.parameters, std::move(group_options));
    }
    return out;
  };
  switch (o.kind) {
    case OptimizerKind::kSgd: {
      const auto options = optim::SGDOptions(o.lr).momentum(o.momentum).nesterov(o.nesterov).weight_decay(o.weight_decay);
      return std::make_unique<optim::SGD>(make_groups(options), options);
    }
    case OptimizerKind::kAdam: {
      const auto options = optim::AdamOptions(o.lr).betas({o.beta1, o.beta2}).eps(o.eps).weight_decay(o.weight_decay);
      return std::make_unique<optim::Adam>(make_groups(options), options);
    }
    case OptimizerKind::kAdamW: {
      const auto options = optim::AdamWOptions(o.lr).betas({o.beta1, o.beta2}).eps(o.eps).weight_decay(o.weight_decay);
      return std::make_unique<optim::AdamW>(make_groups(options), options);
    }
    case OptimizerKind::kNone: return nullptr;
  }
  return nullptr;
}

// What Optimizer::zero_grad does, for every parameter, with or without an optimizer.
void zero_gradients(const std::vector<at::Tensor>& params) {
  for (const at::Tensor& p : params) {
    if (p.grad().defined()) {
      p.mutable_grad().detach_();
      p.mutable_grad().zero_();
    }
  }
}

// The loss terms' taps and the options' own, each once, in first-seen order.
std::vector<std::string> requested_taps(const TrainerOptions& options, const LossTerms& terms) {
  std::vector<std::string> names;
  auto add = [&](const std::string& name) {
    if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
  };
  for (const auto& term : terms) {
    for (const std::string& name : term->taps()) add(name);
  }
  for (const std::string& name : options.taps) add(name);
  return names;
}

std::string term_summary(const std::vector<std::string>& names, const std::vector<double>& values) {
  std::string out;
  for (size_t i = 0; i < names.size(); ++i) out += fmt::format("{}{} {:.4f}", i > 0 ? ", " : "", names[i], values[i]);
  return out;
}

class FunctionTerm : public LossTerm {
 public:
  FunctionTerm(std::string name, double weight, LossFunction compute, std::vector<std::string> taps)
      : LossTerm(std::move(name), weight), compute_(std::move(compute)), taps_(std::move(taps)) {}
  std::vector<std::string> taps() const override { return taps_; }
  Expected<at::Tensor> compute(const StepContext& step) override { return compute_(step); }

 private:
  LossFunction compute_;
  std::vector<std::string> taps_;
};

}  // namespace

double scheduled_lr(double base_lr, const LrSchedule& schedule, int64_t step, int64_t total_steps) {
  const int64_t warmup = schedule.warmup_steps;
  if (step < warmup) return base_lr * static_cast<double>(step + 1) / static_cast<double>(warmup);
  switch (schedule.kind) {
    case ScheduleKind::kConstant: return base_lr;
    case ScheduleKind::kCosine: {
      const int64_t span = std::max<int64_t>(total_steps - warmup, 1);
      return base_lr * 0.5 * (1.0 + std::cos(kPi * static_cast<double>(step - warmup) / static_cast<double>(span)));
    }
    case ScheduleKind::kStep: {
      const int64_t decays = (step - warmup) / std::max<int64_t>(schedule.step_size, 1);
      return base_lr * std::pow(schedule.gamma, static_cast<double>(decays));
    }
  }
  return base_lr;
}

Expected<at::Tensor> StepContext::tap(const std::string& name) const {
  if (const at::Tensor* value = taps.find(name)) return *value;
  return not_found("no value '{}' was tapped (tapped: {}); a loss term names the values it reads in taps(), a hook "
                   "in TrainerOptions::taps",
                   name, taps.is_empty() ? std::string("none") : fmt::format("{}", fmt::join(taps.keys(), ", ")));
}

Expected<at::Tensor> CrossEntropyTerm::compute(const StepContext& step) {
  if (step.outputs.empty() || step.outputs[0].dim() != 2) {
    return invalid_argument("the graph's first output must be logits [batch, classes], got rank {}",
                            step.outputs.empty() ? 0 : step.outputs[0].dim());
  }
  const std::string data = step.data != nullptr ? step.data->describe() : std::string("the data");
  if (!step.labels.defined()) {
    return invalid_argument("cross-entropy needs labels, and the training data {} has none", data);
  }
  const at::Tensor& logits = step.outputs[0];
  const int64_t classes = logits.size(1);
  const at::Tensor outside = step.labels.lt(0).logical_or(step.labels.ge(classes));
  if (outside.any().item<bool>()) {
    const int64_t k = outside.nonzero()[0][0].item<int64_t>();
    const int64_t sample = k < step.batch_size() ? step.samples[static_cast<size_t>(k)] : k;
    return invalid_argument("label {} of sample {} of {} is outside the graph's {} classes",
                            step.labels[k].item<int64_t>(), sample, data, classes);
  }
  return at::cross_entropy_loss(logits, step.labels);
}

std::shared_ptr<LossTerm> make_loss_term(std::string name, double weight, LossFunction compute,
                                         std::vector<std::string> taps) {
  return std::make_shared<FunctionTerm>(std::move(name), weight, std::move(compute), std::move(taps));
}

Expected<TrainPlan> Trainer::plan(const eval::DataSource& data) const {
  const TrainerOptions& o = options_;
  COMPRESS_RETURN_IF_ERROR(check_options(o));
  TrainPlan p;
  p.samples = o.samples > 0 ? std::min(o.samples, data.size()) : data.size();
  if (p.samples < 1) return invalid_argument("{}: the training data {} is empty", o.label, data.describe());
  p.batch = std::min(o.batch, p.samples);
  p.steps_per_epoch = o.drop_last ? p.samples / p.batch : (p.samples + p.batch - 1) / p.batch;
  p.total_steps = o.steps > 0 ? o.steps : o.epochs * p.steps_per_epoch;
  p.epochs = (p.total_steps + p.steps_per_epoch - 1) / p.steps_per_epoch;
  return p;
}

Expected<TrainResult> Trainer::fit(TrainableModel& model, const eval::DataSource& data, const LossTerms& terms,
                                   const TrainerHooks& hooks) const {
  std::mt19937_64 rng(options_.seed);
  return fit(model, data, terms, hooks, rng);
}

Expected<TrainResult> Trainer::fit(TrainableModel& model, const eval::DataSource& data, const LossTerms& terms,
                                   const TrainerHooks& hooks, std::mt19937_64& rng) const {
  const TrainerOptions& o = options_;
  COMPRESS_ASSIGN_OR_RETURN(const TrainPlan plan, this->plan(data));
  if (terms.empty()) return invalid_argument("{}: no loss terms to train on", o.label);
  for (const auto& term : terms) {
    if (term == nullptr) return invalid_argument("{}: a loss term is null", o.label);
  }
  const std::vector<at::Tensor> params = model.parameters();
  if (params.empty()) return invalid_argument("{}: the model has no trainable f32 parameters", o.label);

  TorchThreadsGuard threads(o.threads);
  ModelStateGuard restore(model);
  COMPRESS_RETURN_IF_ERROR(model.set_taps(requested_taps(o, terms)).with_context(o.label));
  ::torch::manual_seed(rng());
  const std::vector<TrainableModel::ParameterGroup> groups = model.parameter_groups();
  std::unique_ptr<::torch::optim::Optimizer> optimizer = make_optimizer(o.optimizer, groups);
  const BatchReader reader(data, o.label);

  TrainResult result;
  for (const auto& term : terms) result.term_names.push_back(term->name());
  std::vector<int64_t> order(static_cast<size_t>(plan.samples));
  std::iota(order.begin(), order.end(), int64_t{0});
  const auto run_start = std::chrono::steady_clock::now();
  try {
    for (int64_t epoch = 0; epoch < plan.epochs; ++epoch) {
      if (o.shuffle) shuffle(order, rng);
      model.train(o.train_mode);
      const auto epoch_start = std::chrono::steady_clock::now();
      const int64_t epoch_steps = std::min(plan.steps_per_epoch, plan.total_steps - result.steps);
      const std::string title =
          plan.epochs > 1 ? fmt::format("{} epoch {}/{}", o.label, epoch + 1, plan.epochs) : o.label;
      ProgressReporter progress(title, epoch_steps,
                                o.progress ? ProgressReporter::Mode::kAuto : ProgressReporter::Mode::kOff);
      EpochRecord sum;
      sum.epoch = epoch;
      sum.terms.assign(terms.size(), 0.0);
      int64_t epoch_samples = 0;
      for (int64_t s = 0; s < epoch_steps; ++s) {
        StepContext step;
        step.step = result.steps;
        step.epoch = epoch;
        step.data = &data;
        const int64_t begin = s * plan.batch;
        const int64_t end = std::min(begin + plan.batch, plan.samples);
        step.samples.assign(order.begin() + begin, order.begin() + end);
        COMPRESS_RETURN_IF_ERROR(reader.read(step.samples, &step.inputs, &step.labels));
        step.lr = scheduled_lr(o.optimizer.lr, o.schedule, step.step, plan.total_steps);
        if (optimizer) {
          for (size_t g = 0; g < groups.size(); ++g) {
            optimizer->param_groups()[g].options().set_lr(step.lr * groups[g].lr_scale);
          }
        }
        if (hooks.before_forward) COMPRESS_RETURN_IF_ERROR(hooks.before_forward(step));

        COMPRESS_ASSIGN_OR_RETURN(TappedForward forward, model.try_forward_with_taps({step.inputs}));
        step.outputs = std::move(forward.outputs);
        step.taps = std::move(forward.taps);
        StepRecord record;
        record.lr = step.lr;
        for (const auto& term : terms) {
          Expected<at::Tensor> value = term->compute(step);
          auto where = [&] {
            return fmt::format("{}: loss term '{}' at step {}", o.label, term->name(), step.step + 1);
          };
          if (!value.has_value()) return value.status().with_context(where());
          if (!value->defined() || value->numel() != 1) {
            return invalid_argument("{}: the term's value has shape [{}], not a scalar", where(),
                                    value->defined() ? fmt::format("{}", fmt::join(value->sizes(), "x")) : "none");
          }
          const at::Tensor weighted = *value * term->weight();
          step.loss = step.loss.defined() ? step.loss + weighted : weighted;
          record.terms.push_back(value->item<double>());
        }
        zero_gradients(params);
        step.loss.backward();
        if (hooks.after_backward) COMPRESS_RETURN_IF_ERROR(hooks.after_backward(step));
        if (o.clip_grad_norm > 0) record.grad_norm = ::torch::nn::utils::clip_grad_norm_(params, o.clip_grad_norm);
        if (optimizer) optimizer->step();
        if (hooks.after_step) COMPRESS_RETURN_IF_ERROR(hooks.after_step(step));

        record.loss = step.loss.item<double>();
        if (!std::isfinite(record.loss)) {
          return invalid_argument("{}: the loss diverged to {} at step {} (lower lr = {})", o.label, record.loss,
                                  step.step + 1, o.optimizer.lr);
        }
        sum.loss += record.loss;
        for (size_t i = 0; i < terms.size(); ++i) sum.terms[i] += record.terms[i];
        ++sum.steps;
        ++result.steps;
        epoch_samples += step.batch_size();
        result.history.push_back(std::move(record));
        const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - epoch_start).count();
        progress.set_detail(fmt::format("loss {:.4f}, {:.0f} samples/s", sum.loss / static_cast<double>(sum.steps),
                                        seconds > 0 ? static_cast<double>(epoch_samples) / seconds : 0.0));
        progress.advance();
      }
      progress.finish();
      const double d = static_cast<double>(std::max<int64_t>(sum.steps, 1));
      sum.loss /= d;
      for (double& t : sum.terms) t /= d;
      sum.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - epoch_start).count();
      result.samples_seen += epoch_samples;
      log_info("{}: epoch {}/{}: loss {:.4f} ({}) over {} steps, {:.0f} samples/s", o.label, epoch + 1, plan.epochs,
               sum.loss, term_summary(result.term_names, sum.terms), sum.steps,
               sum.seconds > 0 ? static_cast<double>(epoch_samples) / sum.seconds : 0.0);
      result.epochs.push_back(sum);
      if (hooks.after_epoch) COMPRESS_RETURN_IF_ERROR(hooks.after_epoch(result.epochs.back()));
    }
  } catch (const Error& e) {
    return e.status().with_context(o.label);
  } catch (const std::exception& e) {
    return make_error(StatusCode::kInternal, "{}: LibTorch failed during training at step {}: {}", o.label,
                      result.steps + 1, e.what());
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - run_start).count();
  return result;
}

}  // namespace compress::torch

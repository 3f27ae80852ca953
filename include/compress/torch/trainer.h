// Trainer: the one training loop (data, optimizer, LR schedule, loss terms, taps, hooks) that gradient passes use.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/ordered_dict.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "compress/support/status.h"
#include "compress/torch/trainable_model.h"

namespace compress::eval {
// Samples are read through the DataSource interface only (a header-only
// class), so the torch layer gains no link dependency on eval; the same
// arrangement as PassContext in compress/pass/pass.h.
class DataSource;
}  // namespace compress::eval

namespace compress::torch {

enum class OptimizerKind {
  kSgd,
  kAdam,
  kAdamW,
  // No parameter update: gradients are computed for the hooks to read and
  // the parameters never change (gradient-based scoring, Taylor importance).
  kNone,
};

// LibTorch's optimizers with these settings; defaults are PyTorch's except
// AdamW's weight decay, which is 0 here like the others'.
struct OptimizerOptions {
  OptimizerKind kind = OptimizerKind::kAdam;
  double lr = 1e-3;            // the base rate that the schedule scales
  double weight_decay = 0.0;   // sgd, adam: L2 added to the gradient; adamw: decoupled (w -= lr * wd * w)
  double momentum = 0.0;       // sgd
  bool nesterov = false;       // sgd, needs momentum > 0
  double beta1 = 0.9;          // adam, adamw
  double beta2 = 0.999;        // adam, adamw
  double eps = 1e-8;           // adam, adamw
};

enum class ScheduleKind {
  kConstant,  // lr
  kCosine,    // lr * (1 + cos(pi * p)) / 2, p running from 0 to 1 over the steps after warm-up
  kStep,      // lr * gamma ^ floor((step - warmup) / step_size)
};

struct LrSchedule {
  ScheduleKind kind = ScheduleKind::kConstant;
  // Steps 0 .. warmup_steps - 1 ramp linearly, step s at lr * (s + 1) / warmup_steps;
  // the schedule proper starts after them.
  int64_t warmup_steps = 0;
  int64_t step_size = 1;  // kStep
  double gamma = 0.1;     // kStep
};

// The learning rate of step `step` (0-based) of a run of `total_steps` steps.
double scheduled_lr(double base_lr, const LrSchedule& schedule, int64_t step, int64_t total_steps);

struct TrainerOptions {
  std::string label = "training";  // the progress bar and every log line and error start with it
  int64_t epochs = 1;
  int64_t steps = 0;     // > 0: exactly this many steps instead of `epochs` (the epoch count follows)
  int64_t samples = -1;  // train on the first `samples` of the data (-1: all)
  int64_t batch = 32;    // at most the sample count
  bool shuffle = true;   // a fresh order every epoch from the seeded engine; false: data order
  // Full batches only (a batch of one breaks batch-norm statistics); with
  // shuffling the remainder is seen in other epochs. false: a last, smaller batch.
  bool drop_last = true;
  bool train_mode = true;  // model.train() (batch norm on batch statistics); false: eval(), as deployed
  uint64_t seed = 0;       // fit() without an engine seeds its own from this
  int threads = 0;         // at::set_num_threads for the run, restored after; 0: leave as is
  OptimizerOptions optimizer;
  LrSchedule schedule;
  double clip_grad_norm = 0.0;  // > 0: the global L2 norm of all gradients is capped at this; 0: off
  std::vector<std::string> taps;  // values hooks read, besides those the loss terms ask for
  bool progress = true;
};

// How fit() will walk the data for the given options and data size.
struct TrainPlan {
  int64_t samples = 0;  // used of the data
  int64_t batch = 0;
  int64_t steps_per_epoch = 0;
  int64_t total_steps = 0;
  int64_t epochs = 0;
};

// What loss terms and hooks see of one step. Filled in stages: the batch
// and lr before the forward pass, outputs and taps after it, the loss after
// the terms ran.
struct StepContext {
  int64_t step = 0;   // 0-based over the run
  int64_t epoch = 0;  // 0-based
  double lr = 0.0;    // this step's rate
  const eval::DataSource* data = nullptr;
  std::vector<int64_t> samples;  // the batch's sample indices in `data`, in batch order
  at::Tensor inputs;             // [batch, ...sample shape]
  at::Tensor labels;             // int64 [batch]; undefined when the data has no labels
  std::vector<at::Tensor> outputs;
  ::torch::OrderedDict<std::string, at::Tensor> taps;
  at::Tensor loss;  // the weighted sum of the terms

  int64_t batch_size() const { return static_cast<int64_t>(samples.size()); }
  // A tapped value; an error naming a value that was not tapped.
  Expected<at::Tensor> tap(const std::string& name) const;
};

// Note [Loss terms]
// The loss of a step is sum_i weight_i * term_i, in the order the terms were
// given; every term is computed and recorded even at weight 0 (so a report
// can show a term that is switched off). compute() returns a scalar attached
// to the model's autograd graph; an error it returns stops the run, with the
// term and step named.
class LossTerm {
 public:
  LossTerm(std::string name, double weight) : name_(std::move(name)), weight_(weight) {}
  virtual ~LossTerm() = default;
  const std::string& name() const { return name_; }
  double weight() const { return weight_; }
  // IR values this term reads from StepContext::taps.
  virtual std::vector<std::string> taps() const { return {}; }
  virtual Expected<at::Tensor> compute(const StepContext& step) = 0;

 private:
  std::string name_;
  double weight_;
};
using LossTerms = std::vector<std::shared_ptr<LossTerm>>;

// Mean cross-entropy of the model's first output (logits [batch, classes])
// against the labels; a label outside [0, classes) is an error naming it and
// its sample.
class CrossEntropyTerm : public LossTerm {
 public:
  explicit CrossEntropyTerm(double weight = 1.0, std::string name = "ce") : LossTerm(std::move(name), weight) {}
  Expected<at::Tensor> compute(const StepContext& step) override;
};

// A term from a function, for losses that need no class of their own.
using LossFunction = std::function<Expected<at::Tensor>(const StepContext&)>;
std::shared_ptr<LossTerm> make_loss_term(std::string name, double weight, LossFunction compute,
                                         std::vector<std::string> taps = {});

struct StepRecord {
  double lr = 0.0;
  double loss = 0.0;          // the weighted sum
  std::vector<double> terms;  // each term's unweighted value, in term order
  double grad_norm = 0.0;     // the global gradient norm before clipping; 0 with clipping off
};

struct EpochRecord {
  int64_t epoch = 0;  // 0-based
  int64_t steps = 0;
  double loss = 0.0;          // mean over the epoch's steps
  std::vector<double> terms;  // means, in term order
  double seconds = 0.0;
};

// Note [Trainer hooks]
// Per step: read the batch, set the lr, before_forward, forward, loss terms,
// backward, after_backward (gradients are in each parameter's grad()),
// gradient clipping, optimizer step, after_step; after the last step of an
// epoch, after_epoch. A hook returning an error stops the run with that
// error as it is (hooks name their pass themselves). Gradual pruning masks gradients in after_backward
// and weights in after_step; Taylor importance reads w * grad in after_backward.
using StepHook = std::function<Status(const StepContext&)>;
struct TrainerHooks {
  StepHook before_forward;
  StepHook after_backward;
  StepHook after_step;
  std::function<Status(const EpochRecord&)> after_epoch;
};

struct TrainResult {
  std::vector<std::string> term_names;
  std::vector<StepRecord> history;  // one per step
  std::vector<EpochRecord> epochs;
  int64_t steps = 0;
  int64_t samples_seen = 0;
  double seconds = 0.0;
  double samples_per_second() const { return seconds > 0 ? static_cast<double>(samples_seen) / seconds : 0.0; }
};

// Note [Trainer determinism]
// The engine is drawn from in a fixed order: one value seeds LibTorch's
// default generator (for any random op), then each epoch's shuffle is a
// Fisher-Yates over the previous epoch's order written out here (not
// std::shuffle, whose algorithm the standard leaves open). With the thread
// count fixed too, a seed gives bit-identical losses and weights.
class Trainer {
 public:
  explicit Trainer(TrainerOptions options) : options_(std::move(options)) {}
  const TrainerOptions& options() const { return options_; }

  // The option checks and the walk over `data`; errors name the option.
  Expected<TrainPlan> plan(const eval::DataSource& data) const;

  // Trains `model` on `data` with the weighted sum of `terms`, seeding an
  // engine from options().seed. The model keeps its taps and train/eval mode.
  Expected<TrainResult> fit(TrainableModel& model, const eval::DataSource& data, const LossTerms& terms,
                            const TrainerHooks& hooks = {}) const;
  // The same, drawing from the caller's engine (a pass's PassContext::rng,
  // so that one recipe seed covers every pass).
  Expected<TrainResult> fit(TrainableModel& model, const eval::DataSource& data, const LossTerms& terms,
                            const TrainerHooks& hooks, std::mt19937_64& rng) const;

 private:
  TrainerOptions options_;
};

}  // namespace compress::torch

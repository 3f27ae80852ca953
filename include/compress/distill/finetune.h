// distill.finetune: trains a graph on labelled data through the trainable executor, optionally
// distilling from the reference model (plain logit KD with a temperature).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "compress/distill/training_loop.h"
#include "compress/pass/pass.h"
#include "compress/pass/registry.h"

namespace compress::distill {

// Gradual magnitude pruning during fine-tuning (Note [Gradual pruning during
// fine-tuning]); off while final_sparsity is 0. Recipe form:
//   prune_schedule: {sparsity: 0.8, initial: 0, start: 0, end: 2000, frequency: 100}
struct PruneSchedule {
  double final_sparsity = 0.0;    // `sparsity`, in [0, 1)
  double initial_sparsity = 0.0;  // `initial`: the target at the first event
  int64_t start_step = 0;         // `start`
  int64_t end_step = -1;          // `end`: the step the target is reached; -1: three quarters of the run
  int64_t frequency = 100;        // `frequency`: steps between prune events
};

// Note [Fine-tuning pass]
// The graph runs through torch::TrainableModel, so every f32 constant that a
// training loop would train is trained (weights, biases, batch-norm affine
// parameters; running statistics are updated in training mode) and a weight
// with a sparse layout trains through its mask: pruned entries stay exactly
// zero and the layout is kept (Note [Trainable parameters]). A structurally
// pruned graph is just a smaller dense graph and needs nothing special.
//
// Loss per batch, with s the student's logits (the graph's first output,
// [N, classes]) and t the teacher's:
//   (1 - alpha) * CE(s, labels) + alpha * T^2 * KL(softmax(t/T) || softmax(s/T))
// (KL averaged over the batch; the T^2 keeps the KD gradient on the CE scale,
// Hinton et al. 2015). The teacher is PassContext::reference_model, run by its
// own TrainableModel in eval mode without gradients. alpha defaults to 0.5
// when a teacher is present and 0 otherwise; alpha > 0 without a teacher is
// an error.
//
// The loop is torch::Trainer's (compress/torch/trainer.h): the terms are its
// CrossEntropyTerm at weight 1 - alpha and LogitDistillationTerm at alpha,
// and gradual pruning plugs in through its step hooks.
//
// Determinism: the shuffle order comes from PassContext::rng and LibTorch's
// generator is seeded from it (Note [Trainer determinism]), so a fixed seed
// and thread count give bit-identical weights.
class FinetunePass : public pass::Pass {
 public:
  static TrainingLoop default_loop() {
    TrainingLoop loop;
    loop.lr = 3e-3;
    return loop;
  }
  struct Options {
    // batch 32 / adam / lr 3e-3 / cosine: the best of a sweep on the Fashion
    // CNN pruned 80% layer-wise (one epoch recovers 90.35% to 89.9-90.1%,
    // three seeds; lr 1e-3 / batch 64 gave 88.9%). Large pretrained models
    // usually want a lower lr (1e-4 .. 1e-3).
    TrainingLoop loop = default_loop();
    std::optional<double> alpha;         // unset: 0.5 with a teacher, 0 without
    double temperature = 4.0;
    PruneSchedule prune_schedule;
  };
  // Reads the training loop (parse_training_loop: epochs, steps, samples, batch, shuffle, optimizer,
  // lr, lr_schedule, momentum, weight_decay), alpha, temperature, prune_schedule.
  static Expected<Options> parse_options(const pass::PassOptions& options);
  FinetunePass() = default;
  explicit FinetunePass(Options options) : options_(std::move(options)) {}
  std::string name() const override { return "distill.finetune"; }
  // Counters: final_loss (mean over the last epoch), final_ce, final_kd,
  // steps, epochs, samples, alpha, temperature, lr (and prune_events,
  // prune_sparsity with a prune schedule). layers[node]["sparsity"] for every
  // node whose weight has a sparse layout.
  Expected<pass::PassResult> run(ir::Graph& graph, pass::PassContext& context) override;
  pass::PassNeeds needs() const override {
    pass::PassNeeds n;
    n.training = true;
    return n;
  }

 private:
  Options options_;
};

Status register_distill_passes(pass::PassRegistry& registry);

}  // namespace compress::distill

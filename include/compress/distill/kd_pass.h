// distill.kd: knowledge distillation from a teacher model into the graph (or a separate student), logits and pairs.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "compress/distill/training_loop.h"
#include "compress/pass/pass.h"

namespace compress::distill {

// Note [distill.kd]
// The student is the graph being compressed (after prune.*, lowrank.* or
// quant.qat's fake-quant training it is the model to recover), or, with
// `student: PATH`, a separate model that replaces it (a narrower or shallower
// architecture, typically randomly initialised). The teacher is `teacher:
// PATH`, or the recipe's original model. The loss is Note [Distillation
// loss] (compress/distill/distiller.h) over the training data; the teacher
// runs as an inference plan on the fastest backend (Note [Teacher runs]),
// or from `teacher_cache: PATH` (Note [Teacher cache]) for multi-epoch runs.
// Adapters train with the student and are not in the result.
class KdPass : public pass::Pass {
 public:
  static TrainingLoop default_loop() {
    TrainingLoop loop;
    loop.lr = 3e-3;
    return loop;
  }
  struct Options {
    TrainingLoop loop = default_loop();
    std::string teacher;  // a model file; empty: PassContext::reference_model
    std::string student;  // a model file replacing the graph; empty: the graph itself
    double temperature = 4.0;
    double alpha = 0.5;
    double logit_weight = 1.0;
    std::vector<std::string> pairs;  // "S=T[:loss[:weight]]" or "auto"
    std::string balance = "static";  // static | ratio
    std::string teacher_backend = "auto";
    std::string teacher_cache;  // a file; empty: the teacher runs live every step
  };
  // Reads the training loop (parse_training_loop), teacher, student, temperature,
  // alpha, logit_weight, pairs, balance, teacher_backend, teacher_cache; each
  // pair is parsed here, so a bad one fails before anything runs.
  static Expected<Options> parse_options(const pass::PassOptions& options);
  KdPass() = default;
  explicit KdPass(Options options) : options_(std::move(options)) {}
  std::string name() const override { return "distill.kd"; }
  // Counters: final_loss, final_ce, final_kd, steps, epochs, samples, alpha,
  // temperature, lr, pairs, adapters, train_seconds, samples_per_second,
  // teacher_cache_bytes and teacher_cache_reused (with a cache).
  // layers[student value]: "pair_loss" (the last epoch's mean), "adapted" (1 when an adapter was inserted).
  Expected<pass::PassResult> run(ir::Graph& graph, pass::PassContext& context) override;
  pass::PassNeeds needs() const override {
    pass::PassNeeds n;
    n.training = true;
    n.reference_model = options_.teacher.empty();
    return n;
  }

 private:
  Options options_;
};

}  // namespace compress::distill

// Distiller: the loss of a batch from a teacher graph and a student model, logits plus value pairs (C++ API).
#pragma once

// Only the distill layer (which links LibTorch) includes this.
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "compress/distill/adapter.h"
#include "compress/distill/losses.h"
#include "compress/distill/teacher.h"
#include "compress/ir/graph.h"
#include "compress/support/status.h"
#include "compress/torch/trainable_model.h"
#include "compress/torch/trainer.h"

namespace compress::distill {

// Note [Distillation loss]
// For a batch with student logits s and teacher logits t, labels y:
//   loss = (1 - alpha) * CE(s, y) + alpha * (w_kd * KD_T(s, t) + sum_i w_i * L_i(A_i(s_i), t_i))
// KD_T is T^2 * KL(softmax(t/T) || softmax(s/T)) (Note [KD loss]); pair i
// compares student value s_i through its adapter A_i (Note [Adapters]) with
// teacher value t_i by loss L_i (Note [Pair losses]). alpha = 0 trains on the
// labels alone (the baseline of every KD figure); w_kd = 0 keeps the
// features only. With balance "ratio" every distillation term is rescaled
// each step so that its value is w times the task loss,
//   w * CE.detach() / L.detach() * L,
// keeping its gradient's direction and fixing its share (the magnitudes of
// feature losses differ by orders between layers and models, which a static
// weight cannot follow).
enum class Balance { kStatic, kRatio };

// One pair as written: "STUDENT=TEACHER[:LOSS[:WEIGHT]]", each side a node
// name, a value name or a glob over node names (Note [Pair resolution]); or
// "auto" (transformer attention maps and hidden states, by relative depth).
struct PairSpec {
  std::string student;
  std::string teacher;
  PairLoss loss = PairLoss::kMse;
  double weight = 1.0;
  bool automatic = false;  // "auto"
  std::string text;        // as written, for messages
};
// Parses one pair; errors quote it and say what is expected.
Expected<PairSpec> parse_pair(const std::string& text);

// Note [Pair resolution]
// A side is first a node name (its first output), then a value name; a side
// with * ? or [ is a glob over node names, matched in topological order.
// Two globs pair their matches by relative depth: student match i (of S)
// with teacher match round((i + 1) * T / S) - 1 (of T), which is in order
// when S = T and maps the last to the last otherwise. "auto" finds, in each
// graph, the attention maps (softmax outputs [N, heads, L, L]) and each
// block's hidden state (the last [N, L, D] residual add before the next
// attention map, or before the end), pairs them by relative depth with
// attention_kl and mse. A name found in neither way is an error naming the
// model and the name; an empty glob names the pattern.
struct ResolvedPair {
  std::string student;  // IR value names
  std::string teacher;
  PairLoss loss = PairLoss::kMse;
  double weight = 1.0;
  Adapter adapter;
  std::string label() const;  // "block2.relu2=block2.relu2:mse"
};

struct DistillerOptions {
  double temperature = 4.0;   // > 0
  double alpha = 0.5;         // [0, 1]
  double logit_weight = 1.0;  // w_kd, >= 0
  std::vector<std::string> pairs;
  Balance balance = Balance::kStatic;
  std::string teacher_backend = "auto";  // auto | onednn | reference
  uint64_t seed = 0;                     // adapter initialisation
};

struct DistillLossParts {
  at::Tensor total;
  at::Tensor ce;                  // on the labels
  at::Tensor kd;                  // logit KD, unweighted (0 when alpha or w_kd is 0)
  std::vector<at::Tensor> pairs;  // unweighted, in pairs() order
};

class Distiller {
 public:
  // Resolves the pairs against `teacher` and `student`'s graph, checks that
  // the two take the same input and give logits of the same classes, makes
  // the adapters and registers their tensors as parameters of `student`
  // ("distill.adapter.<i>.weight"; write_back() leaves them out of the
  // graph) and sets the student's taps. Every error names the option
  // (temperature, alpha, pair ...) or the model and value at fault.
  static Expected<std::unique_ptr<Distiller>> create(const ir::Graph& teacher, compress::torch::TrainableModel& student,
                                                     DistillerOptions options);

  // The loss of one batch in a user's own loop: runs the student (with its
  // taps; gradients flow into it and the adapters) and the teacher (no
  // gradients). `labels` int64 [N].
  Expected<DistillLossParts> loss(const at::Tensor& inputs, const at::Tensor& labels);
  // The same for a student forward already made (outputs and taps) and the
  // teacher's [logits, values...] as teacher_values() names them.
  Expected<DistillLossParts> loss(const std::vector<at::Tensor>& student_outputs,
                                  const ::torch::OrderedDict<std::string, at::Tensor>& student_taps,
                                  const std::vector<at::Tensor>& teacher_outputs, const at::Tensor& labels) const;

  // torch::Trainer terms: "ce" at 1 - alpha, "kd" and one per pair at alpha
  // times their weight; the teacher runs once per step (live, or from `cache`
  // when given: it must hold teacher_values() for the training samples).
  compress::torch::LossTerms trainer_terms(std::shared_ptr<const TeacherCache> cache = nullptr);

  const std::vector<ResolvedPair>& pairs() const { return pairs_; }
  const DistillerOptions& options() const { return options_; }
  TeacherRunner& teacher() { return *teacher_; }
  // The teacher values the pairs read, after the logits (what the runner and a cache return).
  const std::vector<std::string>& teacher_values() const { return teacher_->names(); }

 private:
  Distiller() = default;
  // The loss parts of the Trainer's current step, computed by the first term that asks.
  struct StepCache {
    int64_t step = -1;
    DistillLossParts parts;
  };
  Expected<const DistillLossParts*> step_loss(const compress::torch::StepContext& step,
                                              const std::shared_ptr<const TeacherCache>& cache);

  DistillerOptions options_;
  compress::torch::TrainableModel* student_ = nullptr;
  std::unique_ptr<TeacherRunner> teacher_;
  std::vector<ResolvedPair> pairs_;
  std::vector<size_t> teacher_index_;  // pair i's teacher value in the runner's outputs
  StepCache step_cache_;
};

}  // namespace compress::distill

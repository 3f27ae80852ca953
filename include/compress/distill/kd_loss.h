// The fine-tuning loss: cross-entropy on labels blended with logit distillation (LibTorch tensors).
#pragma once

// Only the distill layer (which links LibTorch, like torch/) includes this.
#include <ATen/core/Tensor.h>

#include <memory>

#include "compress/torch/trainable_model.h"
#include "compress/torch/trainer.h"

namespace compress::distill {

struct DistillLoss {
  at::Tensor total;  // (1 - alpha) * ce + alpha * kd
  at::Tensor ce;     // cross-entropy of the student on the labels (batch mean)
  at::Tensor kd;     // T^2 * KL(softmax(teacher/T) || softmax(student/T)), batch mean; 0 without a teacher
};

// student, teacher: logits [N, C]; labels: int64 [N]. `teacher` may be
// undefined (then kd is 0 and alpha must be 0). Gradients flow only into
// `student`; the teacher is detached.
DistillLoss distillation_loss(const at::Tensor& student, const at::Tensor& teacher, const at::Tensor& labels,
                              double alpha, double temperature);

// The kd part of distillation_loss alone: T^2 * KL(softmax(teacher/T) || softmax(student/T)), batch mean.
at::Tensor kd_divergence(const at::Tensor& student, const at::Tensor& teacher, double temperature);

// The Trainer's distillation term ("kd"): kd_divergence of the model's first
// output against the first output of `teacher`, run on the same batch without
// gradients (the caller puts the teacher in the mode it should run in, eval
// for a trained reference model). Errors name which model's output is wrong.
class LogitDistillationTerm : public compress::torch::LossTerm {
 public:
  LogitDistillationTerm(std::shared_ptr<compress::torch::TrainableModel> teacher, double temperature, double weight)
      : LossTerm("kd", weight), teacher_(std::move(teacher)), temperature_(temperature) {}
  Expected<at::Tensor> compute(const compress::torch::StepContext& step) override;

 private:
  std::shared_ptr<compress::torch::TrainableModel> teacher_;
  double temperature_;
};

}  // namespace compress::distill

// The fine-tuning loss: cross-entropy on labels blended with logit distillation (LibTorch tensors).
#pragma once

// Only the distill layer (which links LibTorch, like torch/) includes this.
#include <ATen/core/Tensor.h>

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

}  // namespace compress::distill

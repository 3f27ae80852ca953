#include "compress/distill/kd_loss.h"

#include <ATen/ATen.h>

namespace compress::distill {

// Note [KD loss]
// KL(p_t || p_s) = sum_c p_t,c * (log p_t,c - log p_s,c), summed over classes
// and averaged over the batch ("batchmean"; at::kl_div's "mean" would also
// divide by the class count). The gradient with respect to the student's
// logits is T * (p_s - p_t) / N after the T^2 factor, so it vanishes exactly
// when student and teacher agree.
DistillLoss distillation_loss(const at::Tensor& student, const at::Tensor& teacher, const at::Tensor& labels,
                              double alpha, double temperature) {
  DistillLoss loss;
  loss.ce = at::cross_entropy_loss(student, labels);
  if (teacher.defined() && alpha > 0) {
    const at::Tensor log_p_student = at::log_softmax(student / temperature, 1);
    const at::Tensor log_p_teacher = at::log_softmax(teacher.detach() / temperature, 1);
    const at::Tensor kl = (log_p_teacher.exp() * (log_p_teacher - log_p_student)).sum() /
                          static_cast<double>(student.size(0));
    loss.kd = kl * (temperature * temperature);
    loss.total = loss.ce * (1.0 - alpha) + loss.kd * alpha;
  } else {
    loss.kd = at::zeros({}, student.options());
    loss.total = loss.ce;
  }
  return loss;
}

}  // namespace compress::distill

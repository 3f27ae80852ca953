#include "compress/distill/kd_loss.h"

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <torch/utils.h>

namespace compress::distill {

// Note [KD loss]
// KL(p_t || p_s) = sum_c p_t,c * (log p_t,c - log p_s,c), summed over classes
// and averaged over the batch ("batchmean"; at::kl_div's "mean" would also
// divide by the class count). The gradient with respect to the student's
// logits is T * (p_s - p_t) / N after the T^2 factor, so it vanishes exactly
// when student and teacher agree.
at::Tensor kd_divergence(const at::Tensor& student, const at::Tensor& teacher, double temperature) {
  const at::Tensor log_p_student = at::log_softmax(student / temperature, 1);
  const at::Tensor log_p_teacher = at::log_softmax(teacher.detach() / temperature, 1);
  const at::Tensor kl =
      (log_p_teacher.exp() * (log_p_teacher - log_p_student)).sum() / static_cast<double>(student.size(0));
  return kl * (temperature * temperature);
}

DistillLoss distillation_loss(const at::Tensor& student, const at::Tensor& teacher, const at::Tensor& labels,
                              double alpha, double temperature) {
  DistillLoss loss;
  loss.ce = at::cross_entropy_loss(student, labels);
  if (teacher.defined() && alpha > 0) {
    loss.kd = kd_divergence(student, teacher, temperature);
    loss.total = loss.ce * (1.0 - alpha) + loss.kd * alpha;
  } else {
    loss.kd = at::zeros({}, student.options());
    loss.total = loss.ce;
  }
  return loss;
}

Expected<at::Tensor> LogitDistillationTerm::compute(const compress::torch::StepContext& step) {
  if (step.outputs.empty() || step.outputs[0].dim() != 2) {
    return invalid_argument("the graph's first output must be logits [batch, classes], got rank {}",
                            step.outputs.empty() ? 0 : step.outputs[0].dim());
  }
  at::Tensor teacher_logits;
  {
    ::torch::NoGradGuard no_grad;
    COMPRESS_ASSIGN_OR_RETURN(std::vector<at::Tensor> outs, teacher_->try_forward({step.inputs}));
    if (outs.empty() || outs[0].dim() != 2) {
      return invalid_argument("the teacher's first output must be logits [batch, classes], got rank {}",
                              outs.empty() ? 0 : outs[0].dim());
    }
    teacher_logits = outs[0];
  }
  const at::Tensor& logits = step.outputs[0];
  if (teacher_logits.sizes() != logits.sizes()) {
    return invalid_argument("the teacher's logits {} differ in shape from the graph's {}",
                            fmt::join(teacher_logits.sizes(), "x"), fmt::join(logits.sizes(), "x"));
  }
  return kd_divergence(logits, teacher_logits, temperature_);
}

}  // namespace compress::distill

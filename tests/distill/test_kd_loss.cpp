#include "torch_catch.h"

#include <ATen/ATen.h>

#include <cmath>
#include <vector>

#include "compress/distill/kd_loss.h"
#include "compress/io/cmf.h"
#include "compress/torch/trainable_model.h"
#include "fashion_data.h"

using namespace compress;

namespace {

// Softmax of row r of `logits` / T, in double.
std::vector<double> softmax_row(const at::Tensor& logits, int64_t r, double t) {
  const int64_t c = logits.size(1);
  std::vector<double> out(static_cast<size_t>(c));
  double mx = -1e300, sum = 0;
  for (int64_t j = 0; j < c; ++j) mx = std::max(mx, logits[r][j].item<double>() / t);
  for (int64_t j = 0; j < c; ++j) sum += out[static_cast<size_t>(j)] = std::exp(logits[r][j].item<double>() / t - mx);
  for (double& v : out) v /= sum;
  return out;
}

double max_abs_grad(const std::vector<at::Tensor>& params) {
  double m = 0;
  for (const at::Tensor& p : params) {
    if (p.grad().defined()) m = std::max(m, p.grad().abs().max().item<double>());
  }
  return m;
}

}  // namespace

TEST_CASE("KD loss equals a hand-computed T^2 KL and CE blend and its logit gradient is T(p_s - p_t)/N") {
  at::manual_seed(3);
  const double t = 3.0, alpha = 0.7;
  at::Tensor student = (at::randn({5, 4}, at::kDouble) * 2).requires_grad_(true);
  const at::Tensor teacher = at::randn({5, 4}, at::kDouble) * 2;
  const at::Tensor labels = at::tensor(std::vector<int64_t>{0, 3, 1, 2, 3}, at::kLong);
  distill::DistillLoss loss = distill::distillation_loss(student, teacher, labels, alpha, t);

  double kl = 0, ce = 0;
  std::vector<std::vector<double>> ps, pt;
  for (int64_t r = 0; r < 5; ++r) {
    ps.push_back(softmax_row(student.detach(), r, t));
    pt.push_back(softmax_row(teacher, r, t));
    for (size_t j = 0; j < 4; ++j) kl += pt[r][j] * (std::log(pt[r][j]) - std::log(ps[r][j]));
    const std::vector<double> p1 = softmax_row(student.detach(), r, 1.0);
    ce -= std::log(p1[static_cast<size_t>(labels[r].item<int64_t>())]);
  }
  kl /= 5;
  ce /= 5;
  CHECK(loss.kd.item<double>() == Approx(t * t * kl).epsilon(1e-9));
  CHECK(loss.ce.item<double>() == Approx(ce).epsilon(1e-9));
  CHECK(loss.total.item<double>() == Approx((1 - alpha) * ce + alpha * t * t * kl).epsilon(1e-9));

  loss.kd.backward();
  for (int64_t r = 0; r < 5; ++r) {
    for (int64_t j = 0; j < 4; ++j) {
      const double expected = t * (ps[r][j] - pt[r][j]) / 5.0;
      CHECK(student.grad()[r][j].item<double>() == Approx(expected).margin(1e-12));
    }
  }
}

TEST_CASE("KD loss with alpha 1 and the student as its own teacher gives zero gradient") {
  auto graph = io::load_cmf(test::fashion_cnn_path());
  REQUIRE(graph.has_value());
  auto model = compress::torch::TrainableModel::create(*graph);
  REQUIRE(model.has_value());
  (*model)->eval();
  at::manual_seed(5);
  const at::Tensor images = at::randn({16, 1, 28, 28});
  const at::Tensor labels = at::randint(0, 10, {16}, at::kLong);
  const std::vector<at::Tensor> params = (*model)->parameters();

  // The same forward with alpha 0 has a clearly nonzero gradient, so a
  // near-zero one below is the KD term vanishing, not a dead graph.
  at::Tensor logits = (*model)->forward(images);
  distill::distillation_loss(logits, logits.detach(), labels, 0.0, 4.0).total.backward();
  const double ce_grad = max_abs_grad(params);
  CHECK(ce_grad > 1e-3);
  for (const at::Tensor& p : params) p.mutable_grad().zero_();

  logits = (*model)->forward(images);
  distill::DistillLoss loss = distill::distillation_loss(logits, logits.detach(), labels, 1.0, 4.0);
  CHECK(std::abs(loss.kd.item<double>()) < 1e-6);
  loss.total.backward();
  CHECK(max_abs_grad(params) < 1e-6);
}

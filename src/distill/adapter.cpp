// Adapter construction and application (Note [Adapters]).
#include "compress/distill/adapter.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <cmath>

namespace compress::distill {
namespace {

std::string dims(const std::vector<int64_t>& shape) { return fmt::format("[{}]", fmt::join(shape, ", ")); }

// Uniform in [-bound, bound], from the engine (not LibTorch's generator, so
// that the adapters depend on the pass's seed alone).
at::Tensor uniform(std::vector<int64_t> shape, double bound, std::mt19937_64& rng) {
  at::Tensor t = at::empty(shape, at::kFloat);
  float* p = t.data_ptr<float>();
  for (int64_t i = 0; i < t.numel(); ++i) {
    const double u = static_cast<double>(rng() >> 11) * 0x1.0p-53;  // [0, 1)
    p[i] = static_cast<float>((2.0 * u - 1.0) * bound);
  }
  return t;
}

}  // namespace

Expected<Adapter> Adapter::create(PairLoss loss, const std::vector<int64_t>& s, const std::vector<int64_t>& t,
                                  std::mt19937_64& rng) {
  using Match = PairLossSpec::Match;
  const PairLossSpec& spec = pair_loss_spec(loss);
  if (s.size() != t.size()) {
    return invalid_argument(
        "the student value is {} (rank {}) and the teacher value {} (rank {}): no adapter bridges "
        "a change of rank; pair values of the same rank",
        dims(s), s.size(), dims(t), t.size());
  }
  Adapter a;
  const size_t rank = s.size();
  if (spec.match == Match::kAttention) {
    if (rank != 4 || s[2] != s[3] || t[2] != t[3]) {
      return invalid_argument("{} compares attention maps [N, heads, L, L]; the values are {} and {}", spec.name,
                              dims(s), dims(t));
    }
    if (s[2] != t[2]) {
      return invalid_argument(
          "{}: the student attends over {} positions and the teacher over {}; attention maps of "
          "different sequence lengths cannot be compared",
          spec.name, s[2], t[2]);
    }
    return a;  // a different head count is handled by the loss
  }
  if (spec.match == Match::kSpatial && rank != 4) {
    return invalid_argument("{} (attention transfer) needs [N, C, H, W] activations; the values are {} and {}",
                            spec.name, dims(s), dims(t));
  }
  std::vector<std::string> steps;
  if (rank == 4) {
    if (spec.match == Match::kShape && s[1] != t[1]) {
      const double bound = 1.0 / std::sqrt(static_cast<double>(s[1]));
      a.projection_ = Projection::kConv1x1;
      a.weight_ = uniform({t[1], s[1], 1, 1}, bound, rng);
      a.bias_ = uniform({t[1]}, bound, rng);
      steps.push_back(fmt::format("1x1 conv {}->{}", s[1], t[1]));
    }
    if (s[2] != t[2] || s[3] != t[3]) {
      const bool larger = s[2] >= t[2] && s[3] >= t[3];
      const bool smaller = s[2] <= t[2] && s[3] <= t[3];
      if (!larger && !smaller) {
        return invalid_argument(
            "the student's spatial size {}x{} is larger than the teacher's {}x{} in one dim and "
            "smaller in the other; no pooling or interpolation bridges that",
            s[2], s[3], t[2], t[3]);
      }
      a.resize_ = {t[2], t[3]};
      a.pool_ = larger;
      steps.push_back(fmt::format("{} {}x{}->{}x{}", larger ? "avg pool" : "bilinear", s[2], s[3], t[2], t[3]));
    }
  } else if (rank == 2 || rank == 3) {
    if (rank == 3 && s[1] != t[1]) {
      return invalid_argument(
          "the student value {} and the teacher value {} differ in dim 1 (a sequence length?); an "
          "adapter maps the last (hidden) dim only",
          dims(s), dims(t));
    }
    if (s.back() != t.back()) {
      const double bound = 1.0 / std::sqrt(static_cast<double>(s.back()));
      a.projection_ = Projection::kLinear;
      a.weight_ = uniform({t.back(), s.back()}, bound, rng);
      a.bias_ = uniform({t.back()}, bound, rng);
      steps.push_back(fmt::format("linear {}->{}", s.back(), t.back()));
    }
  } else {
    for (size_t d = 1; d < rank; ++d) {
      if (s[d] != t[d]) {
        return invalid_argument(
            "the values {} and {} differ in dim {}; adapters exist for [N, C, H, W], [N, D] and "
            "[N, L, D] values only",
            dims(s), dims(t), d);
      }
    }
  }
  if (!steps.empty()) a.description_ = fmt::format("{}", fmt::join(steps, ", "));
  for (at::Tensor* p : {&a.weight_, &a.bias_}) {
    if (p->defined()) p->set_requires_grad(true);
  }
  return a;
}

at::Tensor Adapter::apply(const at::Tensor& x) const {
  at::Tensor y = x;
  if (projection_ == Projection::kConv1x1) y = at::conv2d(y, weight_, bias_);
  if (projection_ == Projection::kLinear) y = at::linear(y, weight_, bias_);
  if (!resize_.empty()) {
    y = pool_ ? at::adaptive_avg_pool2d(y, resize_) : at::upsample_bilinear2d(y, resize_, false);
  }
  return y;
}

std::vector<at::Tensor> Adapter::parameters() const {
  if (!weight_.defined()) return {};
  return {weight_, bias_};
}

void Adapter::set_parameters(const std::vector<at::Tensor>& tensors) {
  if (tensors.size() == 2) {
    weight_ = tensors[0];
    bias_ = tensors[1];
  }
}

}  // namespace compress::distill
